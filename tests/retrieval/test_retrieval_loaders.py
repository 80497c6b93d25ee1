"""Loaders, chunking, BM25 and naming rules: pure functions, no model, no Chroma."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from retrieval._bm25 import BM25Index, tokenize
from retrieval._chunking import Document, Section, chunk_document, split_paragraphs
from retrieval._loaders import FileProblem, LoadOptions, decode_text, load_bytes
from retrieval.errors import IngestError, InvalidNameError
from retrieval.ingest import IngestConfig
from retrieval.store import chunk_id, collection_name

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str, **options):
    return load_bytes((FIXTURES / name).read_bytes(), name, LoadOptions(**options))


# ------------------------------------------------------------------ loaders


def test_markdown_keeps_heading_path_and_ignores_fenced_hashes():
    (doc,), warnings = load("handbook.md")
    assert warnings == []
    assert doc.title == "Employee Handbook"  # from the front matter
    headings = [s.heading for s in doc.sections]
    assert headings == [(), ("Leave", "Annual leave"), ("Leave", "Sick leave"), ("Expenses",)]
    sick = doc.sections[2]
    assert any("# not a heading" in p for p in sick.paragraphs)
    chunks = chunk_document(doc)
    assert chunks[1].text.startswith("Employee Handbook\nLeave > Annual leave\n\n")
    assert "28 days" in chunks[1].text


def test_markdown_title_falls_back_to_h1_then_file_name():
    (doc,), _ = load_bytes(b"# Pricing\n\nPlans start at 5 pounds.\n", "x.md")
    assert doc.title == "Pricing"
    (doc,), _ = load_bytes(b"Plain words only.\n", "price_list-2024.md")
    assert doc.title == "price list 2024"


def test_setext_headings():
    (doc,), _ = load_bytes(b"Pricing\n=======\n\nBasic\n-----\n\nFive pounds.\n", "p.md")
    assert doc.title == "Pricing"
    assert doc.sections[0].heading == ("Pricing", "Basic")


def test_html_visible_text_only_with_sections():
    (doc,), _ = load("warranty.html")
    assert doc.title == "Warranty terms"
    text = "\n".join(p for s in doc.sections for p in s.paragraphs)
    assert "two-year" in text and "Accidental damage is not covered." in text
    assert "secretTracking" not in text and "color: red" not in text and "Home" not in text
    assert [s.heading for s in doc.sections] == [("Warranty",), ("Warranty", "Claims")]


def test_text_file_paragraphs():
    (doc,), _ = load("shipping.txt")
    assert doc.title == "shipping"
    assert len(doc.sections[0].paragraphs) == 3


def test_csv_default_fields_metadata_and_empty_rows():
    docs, warnings = load("faq.csv", metadata_fields=("category",))
    assert [d.title for d in docs] == ["How do I reset my password?", "Can I change my delivery address?"]
    assert docs[0].metadata == {"row": 2, "category": "account"}
    assert warnings == ["1 row(s) without text skipped (row 4)"]


def test_csv_overridden_fields_and_clear_error_for_missing_field():
    docs, _ = load("faq.csv", text_field="title", title_field="category")
    assert docs[0].title == "account"
    with pytest.raises(FileProblem, match=r"no text field 'answer'; fields are: title, content, category, internal"):
        load("faq.csv", text_field="answer")


def test_csv_without_any_known_text_field():
    with pytest.raises(FileProblem, match="no text field .*--text-field"):
        load_bytes(b"a,b\n1,2\n", "t.csv")


def test_jsonl_bad_lines_are_warnings_and_fields_are_overridable():
    docs, warnings = load("products.jsonl", text_field="description", title_field="name", metadata_fields=("sku",))
    assert [d.title for d in docs] == ["Aurora desk lamp", "Boreal thermos"]
    assert docs[1].metadata == {"line": 3, "sku": "THERM-7"}
    assert warnings and "line 2: invalid JSON" in warnings[0]


def test_generated_pdf_pages_and_title(tmp_path, make_pdf):
    path = make_pdf(tmp_path / "a.pdf", [["Hello world.", "Second line."], ["Page two text."]], title="Doc title")
    (doc,), _ = load_bytes(path.read_bytes(), "a.pdf")
    assert doc.title == "Doc title"
    assert [s.metadata["page"] for s in doc.sections] == [1, 2]
    assert doc.sections[1].paragraphs == ["Page two text."]


@pytest.mark.parametrize(
    "data, name, reason",
    [
        (b"", "empty.txt", "empty file"),
        (b"   \n\n", "blank.md", "empty file"),
        (bytes(range(256)) * 4, "garbage.txt", "binary data"),
        (b"caf\xe9 au lait " * 10, "latin1.txt", "not UTF-8 text"),
        (b"\x01\x02\x03\x04abc" * 50, "ctrl.txt", "binary data"),
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", "cannot read PDF|no extractable text"),
        (b"hello", "notes.docx", "unsupported file type '.docx'"),
        (b"<html><script>x()</script></html>", "empty.html", "no text found"),
        (b"not json\n", "x.jsonl", "line 1: invalid JSON"),
    ],
)
def test_unusable_files_raise_file_problem_with_reason(data, name, reason):
    with pytest.raises(FileProblem, match=reason):
        load_bytes(data, name)


def test_utf8_bom_and_utf16_are_text():
    assert decode_text("\ufeffhé".encode("utf-8")) == "hé"
    assert decode_text("hé".encode("utf-16")) == "hé"


# ----------------------------------------------------------------- chunking


def test_chunks_respect_size_and_overlap():
    sentences = [f"Sentence number {i} talks about topic {i % 7}." for i in range(120)]
    doc = Document("s", "Long doc", [Section(("Part",), [" ".join(sentences)])])
    chunks = chunk_document(doc, chunk_chars=400, overlap_chars=80)
    assert len(chunks) > 5
    assert all(len(c.text) <= 400 for c in chunks)
    assert all(c.text.startswith("Long doc\nPart\n\n") for c in chunks)
    # Each chunk starts with the end of the previous one (whole sentences).
    for prev, nxt in zip(chunks, chunks[1:]):
        body = nxt.text.split("\n\n", 1)[1]
        first_sentence = body.split(". ")[0]
        assert first_sentence in prev.text
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sentences)


def test_a_word_longer_than_the_budget_is_cut():
    doc = Document.from_text("s", "T", "x" * 2500)
    chunks = chunk_document(doc, chunk_chars=1000, overlap_chars=0)
    assert "".join(c.text.split("\n\n", 1)[1] for c in chunks) == "x" * 2500


def test_split_paragraphs():
    assert split_paragraphs("a\nb\n\n\n c \r\n\r\nd") == ["a\nb", "c", "d"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunk_chars": 50}, "chunk_chars must be between"),
        ({"overlap_chars": 900}, "overlap_chars must be between"),
        ({"max_file_bytes": 0}, "max_file_bytes must be positive"),
    ],
)
def test_ingest_config_validation(kwargs, message):
    with pytest.raises(IngestError, match=message):
        IngestConfig(**kwargs)


# --------------------------------------------------------------------- BM25


def test_bm25_matches_the_formula():
    texts = ["the cat sat", "cat cat dog", "bird"]
    index = BM25Index(texts, k1=1.2, b=0.75)
    # Tokens after stop words: [cat, sat], [cat, cat, dog], [bird]; average length 2.
    n, df = 3, 2
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    expected0 = idf * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / 2))
    expected1 = idf * 2 * 2.2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / 2))
    scores = index.scores("cat")
    assert scores[0] == pytest.approx(expected0, rel=1e-5)
    assert scores[1] == pytest.approx(expected1, rel=1e-5)
    assert scores[2] == 0
    assert [row for row, _ in index.top("cat", 5)] == [1, 0]
    assert index.top("unknown words", 5) == []


def test_bm25_mask_and_stemming():
    index = BM25Index(["payments are charged monthly", "a payment was charged", "unrelated"])
    assert {row for row, _ in index.top("payment charge", 5)} == {0, 1}
    import numpy as np

    assert [row for row, _ in index.top("payment", 5, mask=np.array([False, True, True]))] == [1]
    assert tokenize("The Payments were Charged") == ["payment", "charg"]


# ------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    "tenant, kb, expected",
    [
        ("acme", "help-centre", "t_acme__help-centre"),
        ("default", "a", "t_default__a"),
        ("Org.1", "kb_v2.0", "t_Org.1__kb_v2.0"),
    ],
)
def test_collection_names(tenant, kb, expected):
    assert collection_name(tenant, kb) == expected


@pytest.mark.parametrize(
    "tenant, kb",
    [
        ("", "kb"),
        ("acme", ""),
        ("ac me", "kb"),
        ("acme", "kb/evil"),
        ("a__b", "kb"),  # would make t_a__b__kb ambiguous
        ("acme", "-kb"),
        ("acme", "kb."),
        ("acme", "k..b"),
        ("acme", "é"),
        ("x" * 129, "kb"),
        ("acme", "k" * 257),
    ],
)
def test_invalid_names_are_refused_clearly(tenant, kb):
    with pytest.raises(InvalidNameError, match="name"):
        collection_name(tenant, kb)


def test_chunk_ids_are_stable_and_distinct():
    a = chunk_id("t", "kb", "src", 0, "text")
    assert a == chunk_id("t", "kb", "src", 0, "text")
    assert len({a, chunk_id("t2", "kb", "src", 0, "text"), chunk_id("t", "kb2", "src", 0, "text"),
                chunk_id("t", "kb", "src2", 0, "text"), chunk_id("t", "kb", "src", 1, "text"),
                chunk_id("t", "kb", "src", 0, "text2")}) == 6
