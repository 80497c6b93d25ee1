"""Ingestion into a real Chroma folder with the real encoder."""

from __future__ import annotations

import os

import pytest

from retrieval import (
    CollectionNotFoundError,
    IngestConfig,
    IngestError,
    InvalidNameError,
    KnowledgeStore,
    ingest_bytes,
    ingest_paths,
)

KB = "help-centre"
TENANT = "acme"


def test_every_file_type_is_ingested_with_full_metadata(store, docs):
    report = ingest_paths(store, [docs], KB, TENANT, metadata_fields=("category",))
    ingested = {os.path.basename(f.source) for f in report.files}
    # products.jsonl has no text/content/body field, so it is reported, not guessed.
    assert ingested == {"handbook.md", "shipping.txt", "warranty.html", "faq.csv", "returns.pdf"}
    failed = {os.path.basename(p.path): p.reason for p in report.failed}
    assert list(failed) == ["products.jsonl"] and "no text field" in failed["products.jsonl"]
    warned = [p for p in report.problems if p.partial]
    assert [os.path.basename(p.path) for p in warned] == ["faq.csv"]  # the row without text

    chunks = list(store.iter_chunks(KB, TENANT))
    assert len(chunks) == report.chunks == report.added
    by_file: dict[str, list[dict]] = {}
    for cid, text, meta in chunks:
        assert set(meta) >= {"tenant_id", "source", "title", "chunk", "content_hash", "heading"}
        assert meta["tenant_id"] == TENANT
        assert meta["source"] == str((docs / os.path.basename(meta["source"])).resolve())
        assert text.startswith(meta["title"])
        by_file.setdefault(os.path.basename(meta["source"]), []).append(meta)
    assert {m["title"] for m in by_file["faq.csv"]} == {"How do I reset my password?", "Can I change my delivery address?"}
    assert {m["category"] for m in by_file["faq.csv"]} == {"account", "orders"}
    assert {m["page"] for m in by_file["returns.pdf"]} == {1, 2}
    assert by_file["warranty.html"][0]["title"] == "Warranty terms"
    assert sorted(m["chunk"] for m in by_file["handbook.md"]) == list(range(len(by_file["handbook.md"])))

    # The JSONL file ingests once its fields are named.
    report = ingest_paths(store, [docs / "products.jsonl"], KB, TENANT, text_field="description", title_field="name")
    assert report.ok and report.added == 2
    assert len(report.problems) == 1 and "line 2" in report.problems[0].reason


def test_reingesting_unchanged_files_changes_nothing(store, docs, snapshot):
    ingest_paths(store, [docs / "handbook.md", docs / "faq.csv"], KB, TENANT)
    before = snapshot(store, KB, TENANT)
    report = ingest_paths(store, [docs / "handbook.md", docs / "faq.csv"], KB, TENANT)
    assert (report.added, report.removed) == (0, 0) and report.unchanged == report.chunks > 0
    assert snapshot(store, KB, TENANT) == before  # same ids, texts, metadata and revision


def test_changed_file_replaces_its_old_chunks(store, docs):
    path = docs / "shipping.txt"
    ingest_paths(store, [path, docs / "handbook.md"], KB, TENANT)
    source = str(path.resolve())
    old_ids = store.source_ids(KB, source, TENANT)
    other = store.sources(KB, TENANT)

    path.write_text("Delivery is now free on every order, always.\n")
    report = ingest_paths(store, [path], KB, TENANT)
    assert (report.added, report.removed) == (1, len(old_ids))
    new_ids = store.source_ids(KB, source, TENANT)
    assert len(new_ids) == 1 and not (new_ids & old_ids)
    texts = [t for _, t, m in store.iter_chunks(KB, TENANT) if m["source"] == source]
    assert texts == ["shipping\n\nDelivery is now free on every order, always."]
    # Other sources untouched.
    after = store.sources(KB, TENANT)
    assert {k: v for k, v in after.items() if k != source} == {k: v for k, v in other.items() if k != source}


def test_delete_source(store, docs):
    ingest_paths(store, [docs / "shipping.txt", docs / "warranty.html"], KB, TENANT)
    source = str((docs / "shipping.txt").resolve())
    count = store.sources(KB, TENANT)[source]
    assert store.delete_source(KB, source, TENANT) == count >= 1
    assert list(store.sources(KB, TENANT)) == [str((docs / "warranty.html").resolve())]
    assert store.delete_source(KB, source, TENANT) == 0
    with pytest.raises(CollectionNotFoundError, match="'nope' does not exist for tenant 'acme'"):
        store.delete_source("nope", source, TENANT)


def test_bad_files_are_reported_and_the_rest_ingests(store, docs, tmp_path, snapshot):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "garbage.txt").write_bytes(os.urandom(900))
    (bad / "empty.md").write_bytes(b"")
    (bad / "latin1.txt").write_bytes("Prix: 5 \u20ac, caf\xe9".encode("cp1252"))
    (bad / "big.txt").write_text("word " * 500)
    config = IngestConfig(max_file_bytes=1000)
    report = ingest_paths(
        store,
        [bad / "garbage.txt", bad / "empty.md", bad / "latin1.txt", bad / "big.txt", bad / "missing.md",
         docs / "shipping.txt"],
        KB, TENANT, config=config,
    )
    reasons = {os.path.basename(p.path): p.reason for p in report.failed}
    assert set(reasons) == {"garbage.txt", "empty.md", "latin1.txt", "big.txt", "missing.md"}
    assert "not text" in reasons["garbage.txt"] or "not UTF-8" in reasons["garbage.txt"]
    assert reasons["empty.md"] == "empty file"
    assert "not UTF-8 text" in reasons["latin1.txt"]
    assert reasons["big.txt"] == "file is 2500 bytes, over the 1000 bytes limit"
    assert reasons["missing.md"] == "no such file or directory"
    assert [os.path.basename(f.source) for f in report.files] == ["shipping.txt"]
    assert not report.ok

    # A run with nothing but bad files leaves the store exactly as it was.
    before = snapshot(store, KB, TENANT)
    report = ingest_paths(store, [bad / "garbage.txt", bad / "big.txt"], KB, TENANT, config=config)
    assert report.files == [] and len(report.failed) == 2
    assert snapshot(store, KB, TENANT) == before


def test_oversized_file_is_refused_without_reading_it(store, tmp_path, monkeypatch):
    big = tmp_path / "huge.txt"
    with big.open("wb") as fh:  # sparse: 60 MB on paper, nothing on disk
        fh.truncate(60 * 1024 * 1024)
    from pathlib import Path

    def no_read(self):
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    report = ingest_paths(store, [big], KB, TENANT)
    assert report.failed[0].reason == "file is 60.0 MB, over the 50.0 MB limit"
    assert not store.exists(KB, TENANT)


def test_invalid_requests_raise_before_touching_the_store(store, docs, snapshot):
    ingest_paths(store, [docs / "shipping.txt"], KB, TENANT)
    before = snapshot(store, KB, TENANT)
    with pytest.raises(InvalidNameError, match="invalid knowledge base name 'bad name'"):
        ingest_paths(store, [docs / "handbook.md"], "bad name", TENANT)
    with pytest.raises(InvalidNameError, match="invalid tenant name"):
        ingest_paths(store, [docs / "handbook.md"], KB, "a__b")
    with pytest.raises(IngestError, match="no files to ingest"):
        ingest_paths(store, [], KB, TENANT)
    with pytest.raises(IngestError, match="text_field must not be empty"):
        ingest_paths(store, [docs / "faq.csv"], KB, TENANT, text_field=" ")
    assert snapshot(store, KB, TENANT) == before
    assert store.list_collections(TENANT) == [KB]


def test_ingest_bytes_uses_the_file_name_as_source(store):
    data = b"# Opening hours\n\nWe are open 9 to 5 on weekdays.\n"
    report = ingest_bytes(store, data, "hours.md", KB, TENANT)
    assert report.ok and report.added == 1
    assert store.sources(KB, TENANT) == {"hours.md": 1}
    report = ingest_bytes(store, data.replace(b"9 to 5", b"8 to 6"), "hours.md", KB, TENANT)
    assert (report.added, report.removed) == (1, 1)
    report = ingest_bytes(store, b"\x00\x01" * 10, "x.txt", KB, TENANT)
    assert not report.ok and "binary" in report.failed[0].reason


def test_tenants_are_isolated(store, docs):
    ingest_paths(store, [docs / "shipping.txt"], KB, "acme")
    ingest_paths(store, [docs / "warranty.html"], KB, "globex")
    assert store.list_collections("acme") == [KB] == store.list_collections("globex")
    assert {os.path.basename(s) for s in store.sources(KB, "acme")} == {"shipping.txt"}
    assert {os.path.basename(s) for s in store.sources(KB, "globex")} == {"warranty.html"}
    assert store.list_collections("initech") == []


def test_directory_without_supported_files_is_reported(store, tmp_path):
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "empty-dir" / "photo.jpg").write_bytes(b"\xff\xd8")
    report = ingest_paths(store, [tmp_path / "empty-dir"], KB, TENANT)
    assert not report.ok and "no .md, .markdown, .txt" in report.failed[0].reason


def test_base_dir_names_sources_relative(store, docs):
    ingest_paths(store, [docs / "shipping.txt"], KB, TENANT, base_dir=docs)
    assert list(store.sources(KB, TENANT)) == ["shipping.txt"]


def test_store_from_settings_uses_the_data_dir(settings, docs, encoder):
    store = KnowledgeStore(settings)
    ingest_paths(store, [docs / "shipping.txt"], KB)
    assert settings.chroma_dir.is_dir()
    assert store.list_collections() == [KB]  # the default tenant
    assert store.list_collections(settings.default_tenant) == [KB]
