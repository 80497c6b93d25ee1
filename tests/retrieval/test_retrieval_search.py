"""Search over a real Chroma folder with the real encoder."""

from __future__ import annotations

import os

import pytest

from retrieval import (
    CollectionNotFoundError,
    InvalidQueryError,
    KnowledgeStore,
    Retriever,
    ingest_bytes,
    ingest_paths,
)

KB = "help-centre"
TENANT = "acme"


@pytest.fixture
def loaded(store, docs):
    ingest_paths(store, [docs], KB, TENANT, text_field=None)
    ingest_paths(store, [docs / "products.jsonl"], KB, TENANT, text_field="description", title_field="name",
                 metadata_fields=("sku",))
    return store


@pytest.mark.parametrize(
    "query, file, needle",
    [
        ("How many days of paid holiday do employees get?", "handbook.md", "28 days"),
        ("I forgot my password, how do I get a new one?", "faq.csv", "Reset password"),
        ("Is limescale covered by the guarantee on my kettle?", "warranty.html", "Limescale"),
        ("When will my refund reach my card?", "returns.pdf", "original payment card"),
        ("THERM-7 flask keeps coffee hot how long", "products.jsonl", "12 hours"),
    ],
)
def test_hybrid_finds_the_right_chunk_with_a_citation(loaded, query, file, needle):
    hits = Retriever(loaded).search(query, KB, TENANT, k=3)
    top = hits[0]
    assert os.path.basename(top.citation.source) == file
    assert needle in top.text
    citation = top.citation
    assert citation.title and citation.chunk_id == top.chunk_id and citation.score == top.score > 0
    assert set(top.ranks) <= {"dense", "bm25"} and top.ranks
    assert top.to_dict()["citation"]["source"] == citation.source


def test_heading_path_is_in_the_citation(loaded):
    hit = Retriever(loaded).search("fit note from a doctor", KB, TENANT, k=1)[0]
    assert hit.citation.title == "Employee Handbook"
    assert hit.citation.heading == "Leave > Sick leave"
    assert hit.citation.label() == "Employee Handbook > Leave > Sick leave (handbook.md)"


def test_modes_scores_and_order(loaded):
    retriever = Retriever(loaded)
    dense = retriever.search("express next day delivery", KB, TENANT, k=4, mode="dense")
    bm25 = retriever.search("express next day delivery", KB, TENANT, k=4, mode="bm25")
    hybrid = retriever.search("express next day delivery", KB, TENANT, k=4, mode="hybrid")
    for hits, key in ((dense, "dense"), (bm25, "bm25")):
        assert [h.ranks[key] for h in hits] == list(range(1, len(hits) + 1))
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1 <= h.score <= 1 for h in dense)
    assert hybrid[0].score <= 2 / 61 + 1e-9
    assert os.path.basename(hybrid[0].source) == "shipping.txt"
    assert len(retriever.search("delivery", KB, TENANT, k=100)) <= 100


def test_where_filter_applies_to_both_rankings(loaded, docs):
    source = str((docs / "handbook.md").resolve())
    for mode in ("dense", "bm25", "hybrid"):
        hits = Retriever(loaded).search("leave days delivery", KB, TENANT, k=5, mode=mode, where={"source": source})
        assert hits and all(h.source == source for h in hits)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"query": ""}, "query is empty"),
        ({"query": "   \n"}, "query is empty"),
        ({"k": 0}, "k must be an integer from 1 to 100, got 0"),
        ({"k": 101}, "k must be an integer from 1 to 100, got 101"),
        ({"k": 10**9}, "k must be an integer from 1 to 100"),
        ({"k": 2.5}, "k must be an integer"),
        ({"k": True}, "k must be an integer"),
        ({"mode": "fuzzy"}, "unknown search mode 'fuzzy'; use one of hybrid, dense, bm25"),
        ({"query": "x" * 5000}, "the limit is 4000"),
        ({"where": {"$bogus": 1}}, "invalid filter"),
    ],
)
def test_bad_queries_raise_and_leave_the_store_unchanged(loaded, snapshot, kwargs, message):
    before = snapshot(loaded, KB, TENANT)
    args = {"query": "delivery", "collection": KB, "tenant": TENANT, **kwargs}
    with pytest.raises(InvalidQueryError, match=message):
        Retriever(loaded).search(**args)
    assert snapshot(loaded, KB, TENANT) == before


def test_unknown_collection_is_a_clear_error_and_creates_nothing(store):
    with pytest.raises(CollectionNotFoundError, match=r"knowledge base 'nope' does not exist for tenant 'acme'"):
        Retriever(store).search("anything", "nope", TENANT)
    assert store.list_collections(TENANT) == []
    # Another tenant's knowledge base is not visible either.
    ingest_bytes(store, b"Opening hours are 9 to 5.", "hours.txt", KB, "globex")
    with pytest.raises(CollectionNotFoundError):
        Retriever(store).search("opening hours", KB, TENANT)


def test_bm25_index_follows_ingest_and_delete(store):
    retriever = Retriever(store)
    ingest_bytes(store, b"Our office cat is called Biscuit.", "cat.txt", KB, TENANT)
    assert retriever.search("Biscuit", KB, TENANT, mode="bm25")[0].source == "cat.txt"
    assert retriever.search("zanzibar", KB, TENANT, mode="bm25") == []
    ingest_bytes(store, b"We ship to Zanzibar twice a month.", "ship.txt", KB, TENANT)
    assert retriever.search("zanzibar", KB, TENANT, mode="bm25")[0].source == "ship.txt"
    store.delete_source(KB, "ship.txt", TENANT)
    assert retriever.search("zanzibar", KB, TENANT, mode="bm25") == []


def test_bm25_index_follows_writes_from_another_process(store, settings):
    retriever = Retriever(store)
    ingest_bytes(store, b"Our office cat is called Biscuit.", "cat.txt", KB, TENANT)
    assert retriever.search("zanzibar", KB, TENANT, mode="bm25") == []
    # A second store object stands in for `lepton ingest` running beside the server:
    # it shares no in-process state with `retriever`, only the Chroma data.
    other = KnowledgeStore(settings)
    ingest_bytes(other, b"We ship to Zanzibar twice a month.", "ship.txt", KB, TENANT)
    assert [h.source for h in retriever.search("zanzibar", KB, TENANT, mode="bm25")] == ["ship.txt"]


# -- the cached collection handle (store.search_collection) -----------------------


@pytest.fixture
def trust_at_once(monkeypatch):
    """Cache a handle even right after a write, so these tests exercise the cached path."""
    monkeypatch.setattr("retrieval.store._RACY_S", 0.0)


def _cached(store: KnowledgeStore) -> bool:
    return f"t_{TENANT}__{KB}" in store._handles


def test_cached_handle_follows_writes_through_the_store(store, trust_at_once):
    retriever = Retriever(store)
    ingest_bytes(store, b"Our office cat is called Biscuit.", "cat.txt", KB, TENANT)
    assert retriever.search("Biscuit", KB, TENANT)[0].source == "cat.txt"
    assert _cached(store)
    ingest_bytes(store, b"We ship to Zanzibar twice a month.", "ship.txt", KB, TENANT)
    for mode in ("hybrid", "bm25"):
        assert retriever.search("zanzibar", KB, TENANT, mode=mode)[0].source == "ship.txt"
    store.delete_source(KB, "ship.txt", TENANT)
    assert retriever.search("zanzibar", KB, TENANT, mode="bm25") == []
    store.drop_collection(KB, TENANT)
    with pytest.raises(CollectionNotFoundError):
        retriever.search("Biscuit", KB, TENANT)


def test_cached_handle_follows_writes_through_a_second_store(store, settings, trust_at_once):
    retriever = Retriever(store)
    ingest_bytes(store, b"Our office cat is called Biscuit.", "cat.txt", KB, TENANT)
    assert retriever.search("zanzibar", KB, TENANT, mode="bm25") == []
    assert _cached(store)
    other = KnowledgeStore(settings)
    ingest_bytes(other, b"We ship to Zanzibar twice a month.", "ship.txt", KB, TENANT)
    assert [h.source for h in retriever.search("zanzibar", KB, TENANT, mode="bm25")] == ["ship.txt"]
    other.drop_collection(KB, TENANT)
    with pytest.raises(CollectionNotFoundError):
        retriever.search("Biscuit", KB, TENANT)


def test_cached_handle_follows_writes_that_bypass_this_process(store, settings, trust_at_once):
    """A write no store object in this process hears of (as from another process) changes
    the folder's SQLite file, which the next search notices."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    retriever = Retriever(store)
    ingest_bytes(store, b"Our office cat is called Biscuit.", "cat.txt", KB, TENANT)
    assert retriever.search("zanzibar", KB, TENANT, mode="bm25") == []
    assert _cached(store)
    raw = chromadb.PersistentClient(str(settings.chroma_dir), settings=ChromaSettings(anonymized_telemetry=False))
    col = raw.get_collection(f"t_{TENANT}__{KB}")
    vector = store.embedding.encode(["We ship to Zanzibar twice a month."])
    col.add(ids=["raw-1"], documents=["We ship to Zanzibar twice a month."], embeddings=vector,
            metadatas=[{"source": "ship.txt", "title": "ship"}])
    col.modify(metadata={**col.metadata, "lepton_revision": "written-elsewhere"})
    assert [h.source for h in retriever.search("zanzibar", KB, TENANT, mode="bm25")] == ["ship.txt"]
    assert retriever.search("zanzibar", KB, TENANT, mode="hybrid")[0].source == "ship.txt"


def test_handle_read_just_after_a_write_is_not_cached(store):
    """File times tick coarsely: a handle read within _RACY_S of a write could miss a
    second write in the same tick, so it is read again on the next search."""
    retriever = Retriever(store)
    ingest_bytes(store, b"Our office cat is called Biscuit.", "cat.txt", KB, TENANT)
    assert retriever.search("Biscuit", KB, TENANT)[0].source == "cat.txt"
    assert not _cached(store)


# -- reading on from a hit ---------------------------------------------------------


def test_passage_reads_on_from_the_hit_without_repeating_the_overlap(store):
    from retrieval import Document, IngestConfig, ingest_documents

    steps = " ".join(f"Step {n}: open panel {n} and press the green button number {n}." for n in range(1, 31))
    ingest_documents(store, [Document.from_text("guide.md", "Pairing guide", steps)], KB, TENANT,
                     config=IngestConfig(chunk_chars=300, overlap_chars=80))
    retriever = Retriever(store)
    hit = retriever.search("open panel 7 and press the green button number 7", KB, TENANT, k=1, mode="bm25")[0]
    assert hit.citation.chunk_index > 0 and hit.text.startswith("Pairing guide")
    text = retriever.passage(hit, KB, TENANT, chars=700)
    # It starts where the hit's own text starts (less the title line), reads on across
    # chunks in order, says every step once, and ends at a sentence end.
    body = hit.text[len("Pairing guide"):].strip()
    assert text.startswith(body[:40]) and len(text) <= 700
    first = int(text.split("Step ", 1)[1].split(":")[0])
    numbers = [int(part.split(":")[0]) for part in text.split("Step ")[1:]]
    assert numbers == list(range(first, first + len(numbers))) and len(numbers) > 4
    assert "Pairing guide" not in text and text.endswith(".")
    assert retriever.passage(hit, KB, TENANT, chars=5000).endswith("number 30.")


def test_cut_at_sentence_prefers_a_sentence_end_then_a_word():
    from retrieval.search import cut_at_sentence, join_overlapping

    assert cut_at_sentence("Short.", 100) == "Short."
    assert cut_at_sentence("One two three. Four five six seven eight.", 25) == "One two three."
    assert cut_at_sentence("Open the settings page and choose a colour", 20) == "Open the settings…"
    assert cut_at_sentence("Steps:\nOpen the panel and then wait", 11) == "Steps:"
    assert join_overlapping("Press A. Then press B.", "Then press B. Then C.") == "Press A. Then press B. Then C."
    assert join_overlapping("Alpha.", "Beta.") == "Alpha.\nBeta."


def test_a_passage_starts_at_a_sentence_start():
    from retrieval.search import from_sentence_start

    assert from_sentence_start("be levied for refunds. Select your location to see the fees. More text follows here "
                               "so the fragment is short.") == ("Select your location to see the fees. More text "
                                                                "follows here so the fragment is short.")
    assert from_sentence_start("Select your location.") == "Select your location."
    assert from_sentence_start("only a fragment without any end") == "only a fragment without any end"
