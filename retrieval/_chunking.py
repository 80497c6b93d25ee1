"""Documents and how they are cut into chunks.

A loader turns a file into :class:`Document` objects made of :class:`Section`
objects (a heading path plus its paragraphs). :func:`chunk_document` packs the
paragraphs of each section into chunks of at most ``chunk_chars`` characters and
prefixes every chunk with the document title and the section's heading path, so a
chunk read (or embedded) alone still says what it is about. Consecutive chunks of
one section share up to ``overlap_chars`` characters so a sentence cut at a chunk
border is still whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Section", "Document", "Chunk", "chunk_document", "split_paragraphs"]

#: Metadata values Chroma accepts.
MetaValue = str | int | float | bool


@dataclass
class Section:
    """A run of paragraphs under one heading path (outermost heading first)."""

    heading: tuple[str, ...] = ()
    paragraphs: list[str] = field(default_factory=list)
    #: Extra metadata for the chunks of this section only (e.g. the PDF page).
    metadata: dict[str, MetaValue] = field(default_factory=dict)


@dataclass
class Document:
    """One logical document: a file, a CSV row, a JSONL record, a help article.

    ``source`` is the unit of replacement: re-ingesting a source replaces every
    chunk that came from it, and :meth:`KnowledgeStore.delete_source` removes them.
    Several documents may share one source (the rows of one CSV file).
    """

    source: str
    title: str
    sections: list[Section]
    metadata: dict[str, MetaValue] = field(default_factory=dict)

    @classmethod
    def from_text(
        cls, source: str, title: str, text: str, metadata: dict[str, MetaValue] | None = None
    ) -> "Document":
        """A document with a single untitled section made of ``text``'s paragraphs."""
        return cls(source, title, [Section((), split_paragraphs(text))], dict(metadata or {}))


@dataclass(frozen=True)
class Chunk:
    """One piece of a document as stored: ``text`` already carries its title/heading prefix."""

    text: str
    title: str
    heading: str
    metadata: dict[str, MetaValue]


_BLANK_LINES = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")
_LINE_BREAKS = re.compile(r"\n+")
_SPACES = re.compile(r"\s+")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines; single line breaks inside them are kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parts = (p.strip() for p in _BLANK_LINES.split(text))
    return [p for p in parts if p]


def _pieces(paragraph: str, budget: int) -> list[str]:
    """Split one paragraph into pieces no longer than ``budget``.

    Prefers line breaks, then sentence ends, then spaces; only a single word longer
    than the budget is cut mid-word.
    """
    if len(paragraph) <= budget:
        return [paragraph]
    for splitter, joiner in ((_LINE_BREAKS, "\n"), (_SENTENCE_END, " "), (_SPACES, " ")):
        parts = [p.strip() for p in splitter.split(paragraph) if p.strip()]
        if len(parts) > 1:
            out: list[str] = []
            current = ""
            for part in parts:
                if current and len(current) + 1 + len(part) <= budget:
                    current = current + joiner + part
                    continue
                if current:
                    out.append(current)
                current = part
            if current:
                out.append(current)
            return [q for p in out for q in _pieces(p, budget)]
    return [paragraph[i : i + budget] for i in range(0, len(paragraph), budget)]


def _tail(text: str, limit: int) -> str:
    """The last whole sentences (or words) of ``text`` that fit in ``limit`` characters."""
    if limit <= 0 or not text:
        return ""
    if len(text) <= limit:
        return text
    window = text[-limit:]
    # Start the overlap at a sentence start when there is one, else at a word start.
    match = _SENTENCE_END.search(window)
    if match:
        return window[match.end() :]
    space = window.find(" ")
    return window[space + 1 :] if space >= 0 else ""


def _heading_line(title: str, heading: tuple[str, ...]) -> str:
    # The document title is printed once; a first heading that repeats it is dropped.
    path = list(heading)
    if path and path[0].strip().lower() == title.strip().lower():
        path = path[1:]
    return " > ".join(h for h in path if h)


def chunk_document(doc: Document, chunk_chars: int = 1000, overlap_chars: int = 150) -> list[Chunk]:
    """Cut ``doc`` into chunks of at most ``chunk_chars`` characters (prefix included)."""
    chunks: list[Chunk] = []
    for section in doc.sections:
        heading = _heading_line(doc.title, section.heading)
        prefix = "\n".join(x for x in (doc.title, heading) if x)
        prefix = prefix + "\n\n" if prefix else ""
        # A pathological heading path must not eat the whole budget.
        if len(prefix) > chunk_chars // 2:
            prefix = prefix[: chunk_chars // 2 - 3].rstrip() + "…\n\n"
        budget = chunk_chars - len(prefix)
        overlap = min(overlap_chars, budget // 3)
        pieces = [p for para in section.paragraphs for p in _pieces(para, budget)]
        bodies: list[str] = []
        current = ""
        for piece in pieces:
            if not current:
                current = piece
            elif len(current) + 2 + len(piece) <= budget:
                current = f"{current}\n\n{piece}"
            else:
                bodies.append(current)
                carry = _tail(current, min(overlap, budget - len(piece) - 2))
                current = f"{carry}\n\n{piece}" if carry else piece
        if current:
            bodies.append(current)
        meta = {**doc.metadata, **section.metadata}
        for body in bodies:
            chunks.append(Chunk(prefix + body, doc.title, heading, meta))
    return chunks
