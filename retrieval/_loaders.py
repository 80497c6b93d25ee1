"""File loaders: bytes of one file in, :class:`Document` objects out.

Each loader raises :class:`FileProblem` with a short, user-facing reason when the
file cannot be used; ingestion reports it by file name and carries on with the
other files. Loaders return ``(documents, warnings)``; warnings are for files that
were used but not entirely (a malformed JSONL line, a CSV row without text).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath

from ._chunking import Document, MetaValue, Section, split_paragraphs

__all__ = [
    "FileProblem",
    "LoadOptions",
    "SUPPORTED_SUFFIXES",
    "DEFAULT_TEXT_FIELDS",
    "DEFAULT_TITLE_FIELDS",
    "load_bytes",
    "decode_text",
]

#: Record fields tried, in order, for a CSV/JSONL row's text when none is named.
DEFAULT_TEXT_FIELDS: tuple[str, ...] = ("text", "content", "body")
#: Record fields tried, in order, for a CSV/JSONL row's title when none is named.
DEFAULT_TITLE_FIELDS: tuple[str, ...] = ("title",)


class FileProblem(Exception):
    """This file cannot be ingested; the message is the reason shown to the user."""


@dataclass(frozen=True)
class LoadOptions:
    """How records in CSV/JSONL files map to documents."""

    text_field: str | None = None
    title_field: str | None = None
    metadata_fields: tuple[str, ...] = field(default_factory=tuple)


Loaded = tuple[list[Document], list[str]]


# --------------------------------------------------------------------- text


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(
        1 for ch in sample if ch not in "\t\n\r\f\v" and unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")
    )
    return bad / len(sample)


def decode_text(data: bytes) -> str:
    """``data`` as text: UTF-8 (with or without BOM) or UTF-16 with a BOM.

    Anything else is refused rather than guessed: a wrong guess would put
    mojibake into the knowledge base, where nobody notices it.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
        if b"\x00" in data[:8192]:
            raise FileProblem("binary data (NUL bytes), not text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileProblem(
            f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it to UTF-8"
        ) from None
    if _control_ratio(text) > 0.01:
        raise FileProblem("looks like binary data, not text (many control characters)")
    return text


def _stem_title(name: str) -> str:
    stem = PurePath(name).stem
    return re.sub(r"[_-]+", " ", stem).strip() or stem


# ----------------------------------------------------------------- markdown

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


class _SectionBuilder:
    """Collects paragraphs under a heading stack (shared by markdown and HTML)."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []
        self.sections: list[Section] = [Section((), [])]

    def heading(self, level: int, text: str) -> None:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))
        self.sections.append(Section(tuple(h for _, h in self.stack), []))

    def paragraph(self, text: str) -> None:
        text = text.strip()
        if text:
            self.sections[-1].paragraphs.append(text)

    def result(self) -> list[Section]:
        return [s for s in self.sections if s.paragraphs]


def _front_matter(text: str) -> tuple[str, str | None]:
    """Strip YAML front matter; return the remaining text and its ``title:`` if any."""
    if not text.startswith("---\n"):
        return text, None
    end = text.find("\n---", 4)
    if end < 0:
        return text, None
    block = text[4:end]
    title = None
    for line in block.splitlines():
        m = re.match(r"title:\s*(.+)", line.strip())
        if m:
            title = m.group(1).strip().strip("'\"")
    rest = text[end + 4 :]
    return rest[rest.find("\n") + 1 :] if "\n" in rest else "", title


def load_markdown(data: bytes, name: str, options: LoadOptions) -> Loaded:
    text, title = _front_matter(decode_text(data).replace("\r\n", "\n"))
    builder = _SectionBuilder()
    paragraph: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if paragraph:
            builder.paragraph("\n".join(paragraph))
            paragraph.clear()

    for line in text.split("\n"):
        if fence is not None:
            paragraph.append(line)
            if line.strip().startswith(fence):
                fence = None
            continue
        m = _FENCE.match(line)
        if m:
            fence = m.group(1)[:3]
            paragraph.append(line)
            continue
        m = _ATX.match(line)
        if m:
            flush()
            heading = (m.group(2) or "").strip()
            if heading:
                builder.heading(len(m.group(1)), heading)
                if title is None and len(m.group(1)) == 1:
                    title = heading
            continue
        m = _SETEXT.match(line)
        if m and len(paragraph) == 1 and not paragraph[0].lstrip().startswith(("-", "*", ">")):
            heading = paragraph.pop().strip()
            level = 1 if m.group(1).startswith("=") else 2
            builder.heading(level, heading)
            if title is None and level == 1:
                title = heading
            continue
        if not line.strip():
            flush()
        else:
            paragraph.append(line.rstrip())
    flush()
    sections = builder.result()
    return [Document(name, title or _stem_title(name), sections)], []


# --------------------------------------------------------------------- text


def load_text(data: bytes, name: str, options: LoadOptions) -> Loaded:
    text = decode_text(data)
    return [Document.from_text(name, _stem_title(name), text)], []


# --------------------------------------------------------------------- html

_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "nav", "iframe", "object"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "li", "ul", "ol",
    "dl", "dt", "dd", "table", "tr", "blockquote", "pre", "figure", "figcaption", "form",
    "fieldset", "address", "details", "summary", "body", "hr",
}
_VOID_TAGS = {"br", "img", "hr", "meta", "link", "input", "wbr", "area", "base", "col", "source"}


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, split into heading sections and paragraphs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = _SectionBuilder()
        self.buffer: list[str] = []
        self.skip_depth = 0
        self.in_title = False
        self.title_parts: list[str] = []
        self.heading_level: int | None = None
        self.heading_parts: list[str] = []
        self.first_h1: str | None = None
        self.pre_depth = 0

    def _flush(self) -> None:
        text = "".join(self.buffer)
        self.buffer.clear()
        if not self.pre_depth:
            text = re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v\n]*", "\n", re.sub(r"[ \t\r\f\v]+", " ", text))
        self.builder.paragraph(text)

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001 - HTMLParser API
        if tag == "title":
            self.in_title = True
        if tag in _SKIP_TAGS and tag not in _VOID_TAGS:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading_level = int(tag[1])
            self.heading_parts = []
        elif tag == "br":
            self.buffer.append("\n")
        elif tag in ("td", "th"):
            self.buffer.append(" ")
        elif tag in _BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self.pre_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP_TAGS and tag not in _VOID_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if self.heading_level is not None and re.fullmatch(r"h[1-6]", tag):
            text = re.sub(r"\s+", " ", "".join(self.heading_parts)).strip()
            if text:
                self.builder.heading(self.heading_level, text)
                if self.heading_level == 1 and self.first_h1 is None:
                    self.first_h1 = text
            self.heading_level = None
        elif tag in _BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self.pre_depth = max(0, self.pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.skip_depth:
            return
        if self.heading_level is not None:
            self.heading_parts.append(data)
        else:
            self.buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def load_html(data: bytes, name: str, options: LoadOptions) -> Loaded:
    text = decode_text(data)
    parser = _HTMLText()
    try:
        parser.feed(text)
        parser.close()
    except Exception as exc:  # html.parser is lenient; this is belt and braces
        raise FileProblem(f"cannot parse HTML: {exc}") from None
    title = re.sub(r"\s+", " ", "".join(parser.title_parts)).strip()
    title = title or parser.first_h1 or _stem_title(name)
    return [Document(name, title, parser.builder.result())], []


# ---------------------------------------------------------------------- pdf


def _pdf_paragraphs(page_text: str) -> list[str]:
    """PDF text comes as visual lines: rejoin lines into paragraphs.

    A line ending a sentence (or a blank line) closes a paragraph; other line
    breaks are just where the page's column ended.
    """
    paragraphs: list[str] = []
    for block in split_paragraphs(page_text):
        current: list[str] = []
        for line in block.split("\n"):
            line = line.strip()
            if not line:
                continue
            if current and current[-1].endswith("-") and line[:1].islower():
                current[-1] = current[-1][:-1] + line  # hyphenated word across lines
            else:
                current.append(line)
            if line.endswith((".", "!", "?", ":")):
                paragraphs.append(" ".join(current))
                current = []
        if current:
            paragraphs.append(" ".join(current))
    return paragraphs


def load_pdf(data: bytes, name: str, options: LoadOptions) -> Loaded:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:  # pragma: no cover - pypdf is a dependency
        raise FileProblem("PDF support needs the pypdf package (pip install pypdf)") from None
    import logging

    # pypdf logs every recoverable glitch of a damaged file; our report says enough.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if not data.lstrip()[:5] == b"%PDF-":
        raise FileProblem("not a PDF file (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileProblem("PDF is password-protected")
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            paragraphs = _pdf_paragraphs(page.extract_text() or "")
            if paragraphs:
                sections.append(Section((), paragraphs, {"page": number}))
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except FileProblem:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FileProblem(f"cannot read PDF: {exc}") from None
    if not sections:
        raise FileProblem("no extractable text in PDF (scanned images need OCR first)")
    return [Document(name, str(meta_title).strip() or _stem_title(name), sections)], []


# ---------------------------------------------------------------- records


def _pick(keys: list[str], wanted: str | None, defaults: tuple[str, ...], what: str) -> str | None:
    """The record key to use for ``what``: the named one, else the first default present."""
    by_lower = {k.strip().lower(): k for k in keys}
    if wanted is not None:
        key = by_lower.get(wanted.strip().lower())
        if key is None:
            raise FileProblem(
                f"no {what} field {wanted!r}; fields are: {', '.join(keys) or '(none)'}"
            )
        return key
    for name in defaults:
        if name in by_lower:
            return by_lower[name]
    return None


def _meta_value(value: object) -> MetaValue | None:
    if value is None or value == "":
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _record_docs(
    records: list[tuple[int, dict]], name: str, options: LoadOptions, unit: str
) -> Loaded:
    """Documents from (number, record) pairs of one CSV/JSONL file."""
    keys: list[str] = []
    for _, record in records:
        keys.extend(k for k in record if k not in keys)
    text_key = _pick(keys, options.text_field, DEFAULT_TEXT_FIELDS, "text")
    if text_key is None:
        raise FileProblem(
            f"no text field (tried {', '.join(DEFAULT_TEXT_FIELDS)}); fields are: "
            f"{', '.join(keys) or '(none)'}; name one with text_field / --text-field"
        )
    title_key = _pick(keys, options.title_field, DEFAULT_TITLE_FIELDS, "title")
    meta_keys = [_pick(keys, m, (), "metadata") for m in options.metadata_fields]
    docs: list[Document] = []
    empty: list[int] = []
    for number, record in records:
        value = record.get(text_key)
        text = value if isinstance(value, str) else ("" if value is None else str(value))
        if not text.strip():
            empty.append(number)
            continue
        title = str(record.get(title_key) or "").strip() if title_key else ""
        metadata: dict[str, MetaValue] = {unit: number}
        for wanted, key in zip(options.metadata_fields, meta_keys):
            v = _meta_value(record.get(key))
            if v is not None:
                metadata[wanted] = v
        docs.append(Document.from_text(name, title or f"{_stem_title(name)} {unit} {number}", text, metadata))
    warnings = []
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (" …" if len(empty) > 5 else "")
        warnings.append(f"{len(empty)} {unit}(s) without text skipped ({unit} {shown})")
    if not docs:
        raise FileProblem(f"no {unit} has text in field {text_key!r}")
    return docs, warnings


def load_csv(data: bytes, name: str, options: LoadOptions) -> Loaded:
    text = decode_text(data)
    # Help-centre exports put whole articles in one cell: lift the 128 KiB default.
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
        if not reader.fieldnames:
            raise FileProblem("CSV has no header row")
        # Row numbers count the header as row 1, as spreadsheets show them.
        records = [(i, row) for i, row in enumerate(reader, start=2)]
    except csv.Error as exc:
        raise FileProblem(f"cannot parse CSV: {exc}") from None
    if not records:
        raise FileProblem("CSV has a header but no rows")
    return _record_docs([(i, {k: v for k, v in r.items() if k is not None}) for i, r in records], name, options, "row")


def load_jsonl(data: bytes, name: str, options: LoadOptions) -> Loaded:
    text = decode_text(data)
    records: list[tuple[int, dict]] = []
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"line {number}: invalid JSON ({exc.msg})")
            continue
        if not isinstance(value, dict):
            bad.append(f"line {number}: not a JSON object")
            continue
        records.append((number, value))
    if not records:
        raise FileProblem(bad[0] if bad else "no JSON records")
    docs, warnings = _record_docs(records, name, options, "line")
    if bad:
        warnings.insert(0, f"{len(bad)} bad line(s) skipped: " + "; ".join(bad[:3]) + (" …" if len(bad) > 3 else ""))
    return docs, warnings


# ------------------------------------------------------------------ dispatch

_LOADERS = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".csv": load_csv,
    ".jsonl": load_jsonl,
    ".ndjson": load_jsonl,
}

#: File name endings ingestion understands.
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(_LOADERS)


def load_bytes(data: bytes, name: str, options: LoadOptions | None = None) -> Loaded:
    """Documents in ``data``, the content of a file called ``name`` (its suffix picks the loader).

    Every document's ``source`` is ``name``.
    """
    loader = _LOADERS.get(PurePath(name).suffix.lower())
    if loader is None:
        raise FileProblem(
            f"unsupported file type {PurePath(name).suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not data.strip():
        raise FileProblem("empty file")
    docs, warnings = loader(data, name, options or LoadOptions())
    docs = [d for d in docs if any(s.paragraphs for s in d.sections)]
    if not docs:
        raise FileProblem("no text found")
    return docs, warnings
