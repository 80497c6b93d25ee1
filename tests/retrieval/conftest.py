"""Shared fixtures for the retrieval tests: a real Chroma folder and the real encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.settings import Settings
from retrieval import KnowledgeStore, load_encoder

FIXTURES = Path(__file__).parent / "fixtures"


def make_pdf(path: Path, pages: list[list[str]], title: str | None = None) -> Path:
    """Write a small valid PDF with one text line per entry, Helvetica, one page per list."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects: list[bytes] = []  # object i+1 is objects[i]
    n_pages = len(pages)
    font_no = 3
    first_page_no = 4
    kids = " ".join(f"{first_page_no + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        content_no = first_page_no + 2 * i + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_no} 0 R >> >> /Contents {content_no} 0 R >>".encode()
        )
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        for line in lines:
            ops.append(f"({esc(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info_no = None
    if title:
        objects.append(f"<< /Title ({esc(title)}) >>".encode("latin-1"))
        info_no = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info_no} 0 R" if info_no else "") + " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    path.write_bytes(bytes(out))
    return path


@pytest.fixture(scope="session")
def encoder():
    """Load the real all-MiniLM-L6-v2 once for the whole run."""
    return load_encoder(None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def store(settings: Settings, encoder) -> KnowledgeStore:
    return KnowledgeStore(settings)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A private copy of the fixture files (tests may edit them) plus a generated PDF."""
    folder = tmp_path / "docs"
    # The WixQA-format file is an evaluation input, not a document to ingest.
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns("wixqa_*"))
    make_pdf(
        folder / "returns.pdf",
        [
            ["Returns policy.", "Unworn items can be returned within 60 days for a full refund."],
            ["Refunds go back to the original payment card.", "Gift cards are refunded as store credit."],
        ],
        title="Returns policy",
    )
    return folder


def _snapshot(store: KnowledgeStore, kb: str, tenant: str | None = None) -> tuple:
    if not store.exists(kb, tenant):
        return ("absent",)
    chunks = sorted((cid, text, tuple(sorted(meta.items()))) for cid, text, meta in store.iter_chunks(kb, tenant))
    return store.revision(kb, tenant), tuple(chunks)


@pytest.fixture
def snapshot():
    """snapshot(store, kb, tenant): revision and every (id, text, metadata) of a knowledge base."""
    return _snapshot


@pytest.fixture(name="make_pdf")
def make_pdf_fixture():
    return make_pdf
