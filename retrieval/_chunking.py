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


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines; single line breaks inside them are kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parts = (p.strip() for p in _BLANK_LINES.split(text))
    return [p for p in parts if p]


def _units(paragraph: str, budget: int, sep: str = "\n\n") -> list[tuple[str, str]]:
    """Split one paragraph into (separator, text) units no longer than ``budget``.

    A paragraph that fits is one unit; a longer one is split at line breaks, then at
    sentence ends, then between words (packed to half the budget so an overlap still
    fits); only a single word longer than the budget is cut mid-word. The separator
    is what joins a unit to the one before it when both land in the same chunk.
    """
    if len(paragraph) <= budget:
        return [(sep, paragraph)]
    for splitter, joiner in ((_LINE_BREAKS, "\n"), (_SENTENCE_END, " ")):
        parts = [p.strip() for p in splitter.split(paragraph) if p.strip()]
        if len(parts) > 1:
            out: list[tuple[str, str]] = []
            for i, part in enumerate(parts):
                out.extend(_units(part, budget, sep if i == 0 else joiner))
            return out
    words = paragraph.split()
    if len(words) > 1:
        out, current = [], ""
        for word in words:
            if current and len(current) + 1 + len(word) > max(budget // 2, 1):
                out.append(current)
                current = ""
            current = f"{current} {word}" if current else word
        out.append(current)
        return [u for i, piece in enumerate(out) for u in _units(piece, budget, sep if i == 0 else " ")]
    cuts = [paragraph[i : i + budget] for i in range(0, len(paragraph), budget)]
    return [(sep if i == 0 else "", cut) for i, cut in enumerate(cuts)]


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


def chunk_document(doc: Document, chunk_chars: int = 700, overlap_chars: int = 100) -> list[Chunk]:
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
        units = [u for para in section.paragraphs for u in _units(para, budget)]
        bodies: list[str] = []
        current = ""
        for sep, text in units:
            if not current:
                current = text
            elif len(current) + len(sep) + len(text) <= budget:
                current = current + sep + text
            else:
                bodies.append(current)
                carry = _tail(current, min(overlap, budget - len(text) - len(sep)))
                current = carry + sep + text if carry else text
        if current:
            bodies.append(current)
        meta = {**doc.metadata, **section.metadata}
        for body in bodies:
            chunks.append(Chunk(prefix + body, doc.title, heading, meta))
    return chunks
