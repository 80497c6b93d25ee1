"""The store against a real Chroma server on loopback (the `chroma` command chromadb installs)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.settings import Settings
from retrieval import KnowledgeStore, Retriever, StoreUnavailableError, ingest_paths

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chroma_command() -> str:
    # The console script sits next to the interpreter running the tests.
    local = Path(sys.executable).with_name("chroma")
    found = str(local) if local.exists() else shutil.which("chroma")
    if not found:
        pytest.fail("the `chroma` command (installed by chromadb) was not found")
    return found


@pytest.fixture
def chroma_url(tmp_path):
    port = _free_port()
    log = (tmp_path / "chroma.log").open("wb")
    proc = subprocess.Popen(
        [_chroma_command(), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma server did not start: {(tmp_path / 'chroma.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_ingest_and_search_through_http_client(chroma_url, tmp_path, docs, encoder):
    settings = Settings(data_dir=tmp_path / "data", chroma_url=chroma_url)
    store = KnowledgeStore(settings)
    report = ingest_paths(store, [docs / "handbook.md", docs / "warranty.html"], "help", "acme")
    assert report.ok and report.added > 0
    assert not settings.chroma_dir.exists()  # nothing went to the embedded folder

    hits = Retriever(store).search("Is limescale damage covered?", "help", "acme", k=3)
    assert Path(hits[0].source).name == "warranty.html" and "Limescale" in hits[0].text

    again = ingest_paths(store, [docs / "handbook.md"], "help", "acme")
    assert again.added == 0 and again.unchanged > 0
    assert store.delete_source("help", hits[0].source, "acme") > 0

    # A second client (another API worker) sees the same data.
    other = KnowledgeStore(Settings(data_dir=tmp_path / "other", chroma_url=chroma_url))
    assert [Path(s).name for s in other.sources("help", "acme")] == ["handbook.md"]


def test_unreachable_server_is_a_clear_error(tmp_path):
    store = KnowledgeStore(Settings(data_dir=tmp_path, chroma_url=f"http://127.0.0.1:{_free_port()}"))
    with pytest.raises(StoreUnavailableError, match="cannot reach the Chroma server at http://127.0.0.1:"):
        store.list_collections("acme")


def test_search_sees_writes_from_other_clients_of_the_server(chroma_url, tmp_path, encoder):
    """In this process a write through any store reaches the next search at once; a write
    by another client of the server (here a bare Chroma client) within server_recheck_s."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from retrieval import ingest_bytes

    settings = Settings(data_dir=tmp_path / "data", chroma_url=chroma_url)
    store = KnowledgeStore(settings, server_recheck_s=0.5)
    retriever = Retriever(store)
    ingest_bytes(store, b"Our office cat is called Biscuit.", "cat.txt", "help", "acme")
    assert retriever.search("zanzibar", "help", "acme", mode="bm25") == []
    ingest_bytes(KnowledgeStore(settings), b"We ship to Zanzibar twice a month.", "ship.txt", "help", "acme")
    assert [h.source for h in retriever.search("zanzibar", "help", "acme", mode="bm25")] == ["ship.txt"]

    port = int(chroma_url.rsplit(":", 1)[1])
    raw = chromadb.HttpClient(host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False))
    col = raw.get_collection("t_acme__help")
    text = "Parcels to Madagascar take three weeks."
    col.add(ids=["raw-1"], documents=[text], embeddings=store.embedding.encode([text]),
            metadatas=[{"source": "mada.txt", "title": "mada"}])
    col.modify(metadata={**col.metadata, "lepton_revision": "written-elsewhere"})
    time.sleep(0.6)
    assert [h.source for h in retriever.search("madagascar", "help", "acme", mode="bm25")] == ["mada.txt"]
