"""Retrieval benchmark: ingestion throughput against the bare encoder, and query latency at scale.

1. Throughput. The WixQA articles are chunked; the encoder alone embeds those chunk
   texts (the baseline, measured in the same run) and the full ingestion path
   (chunking, id diffing, embedding, Chroma writes) ingests the same articles into a
   fresh store, alternating slice by slice. Printed: both rates and their ratio
   (goal >= 0.8).

2. Latency. A knowledge base of N chunks (default 10k and 50k) is filled from a pool
   of real texts (WixQA chunks and Banking77 messages) repeated until N. Every
   distinct text is embedded by the real encoder; a repeat gets its original's
   vector plus small Gaussian noise (renormalised), so the HNSW graph holds N
   distinct points without spending an hour encoding duplicates. Queries (WixQA
   questions, Banking77 test messages) are encoded for real on every search.
   Printed: p50/p95 per mode, the BM25 index build time, and rank_bm25's
   whole-collection scan on the same texts for comparison.

3. Stages. Each step of a hybrid search (validation, collection handle, query
   encoding, Chroma's nearest-neighbour query, BM25 ranking, fusion) is timed on
   its own, in the order ``Retriever.search`` runs them, over the same queries.
   Printed: median and minimum wall time and median CPU time of this process per
   step. On a machine shared with other jobs wall times swell with the load; CPU
   time and the minimum move much less, so they show what each step costs.

Example:
    python benchmarks/bench_retrieval.py \
        --wixqa ../shared/data/wixqa/wixqa_public_rag_sample.jsonl \
        --banking77 ../shared/data/banking77/train.csv --sizes 10000 50000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval import KnowledgeStore, Retriever, ingest_documents  # noqa: E402
from retrieval._chunking import chunk_document  # noqa: E402
from retrieval.evaluate import load_wixqa  # noqa: E402
from retrieval.ingest import IngestConfig  # noqa: E402
from retrieval.store import ChunkRecord, chunk_id, content_hash  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def throughput(store: KnowledgeStore, articles, config: IngestConfig, rounds: int = 4) -> dict:
    """Encoder alone vs full ingestion on the same chunks, interleaved in ``rounds`` slices.

    Alternating the two on successive slices of the corpus keeps a change in machine
    load (other processes on the two cores) from favouring one side of the ratio.
    """
    ef = store.embedding
    ef.encode(["warm-up text"] * 32)  # model load and first-call allocations stay out of both timings
    raw_s = ingest_s = 0.0
    n_chunks = 0
    chars: list[int] = []
    for r in range(rounds):
        part = articles[r::rounds]
        texts = [c.text for doc in part for c in chunk_document(doc, config.chunk_chars, config.overlap_chars)]
        chars += [len(t) for t in texts]
        t0 = time.perf_counter()
        ef.encode(texts)
        raw_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        report = ingest_documents(store, part, "bench-ingest", "bench", config=config)
        ingest_s += time.perf_counter() - t0
        assert report.added == len(texts), (report.added, len(texts))
        n_chunks += len(texts)
    raw_rate, ingest_rate = n_chunks / raw_s, n_chunks / ingest_s
    return {
        "chunks": n_chunks,
        "mean_chunk_chars": round(statistics.mean(chars)),
        "encode_only_chunks_per_s": round(raw_rate, 1),
        "ingest_chunks_per_s": round(ingest_rate, 1),
        "ratio": round(ingest_rate / raw_rate, 3),
    }


def text_pool(articles, banking_path: Path | None, config: IngestConfig, limit: int) -> list[tuple[str, str]]:
    """(title, text) pairs of distinct real texts."""
    pool = [(c.title, c.text) for doc in articles for c in chunk_document(doc, config.chunk_chars, config.overlap_chars)]
    if banking_path:
        with banking_path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                pool.append((row.get("category", "banking"), row["text"]))
    return pool[:limit]


def fill(store: KnowledgeStore, kb: str, pool_vectors: np.ndarray, pool: list[tuple[str, str]], n: int, start: int, rng) -> None:
    """Add chunks start..n-1 (repeating the pool) with noisy copies of the pool's vectors."""
    batch = 4000
    for lo in range(start, n, batch):
        hi = min(n, lo + batch)
        idx = np.arange(lo, hi) % len(pool)
        vectors = pool_vectors[idx].copy()
        repeats = np.arange(lo, hi) >= len(pool)
        if repeats.any():
            vectors[repeats] += rng.normal(0, 0.02, size=(int(repeats.sum()), vectors.shape[1])).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = []
        for i, p in zip(range(lo, hi), idx):
            title, text = pool[p]
            source = f"synthetic/{i // 20}"
            records.append(ChunkRecord(chunk_id("bench", kb, source, i, text), text, {
                "tenant_id": "bench", "source": source, "title": title, "heading": "", "chunk": i,
                "content_hash": content_hash(text),
            }))
        store.add_records(kb, "bench", records, vectors)


def latency(retriever: Retriever, kb: str, queries: list[str], modes: list[str], k: int) -> dict:
    out = {}
    for mode in modes:
        for q in queries[:5]:  # warm caches (and the BM25 index) outside the timing
            retriever.search(q, kb, "bench", k=k, mode=mode)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q, kb, "bench", k=k, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
        out[mode] = {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2)}
    return out


def stages(retriever: Retriever, kb: str, queries: list[str], k: int) -> dict:
    """Wall and CPU milliseconds of each step of a hybrid search, step by step."""
    store, tenant = retriever.store, "bench"
    pool = max(k, retriever.candidates)
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def timed(name, step):  # noqa: ANN001, ANN202
        c0, t0 = time.process_time(), time.perf_counter()
        value = step()
        wall.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        cpu.setdefault(name, []).append((time.process_time() - c0) * 1000)
        return value

    for q in queries:
        query = timed("validate", lambda: retriever._check(q, k, "hybrid"))
        col = timed("collection handle", lambda: store.search_collection(kb, tenant))
        index = timed("BM25 index lookup", lambda: retriever._index(col, kb, tenant))
        vector = timed("encode query", lambda: store.embedding.encode_query(query))
        timed("Chroma query alone", lambda: col.query(query_embeddings=vector, n_results=pool, include=["distances"]))
        dense = timed("dense ranking", lambda: retriever._dense(col, vector, pool, None, index))
        lexical = timed("BM25 ranking", lambda: retriever._bm25(col, index, query, pool, None))
        timed("fusion + hits", lambda: retriever._fuse(dense, lexical, k))
        timed("whole search", lambda: retriever.search(q, kb, tenant, k=k, mode="hybrid"))
    return {name: {"p50_ms": round(statistics.median(v), 3), "min_ms": round(min(v), 3),
                   "cpu_p50_ms": round(statistics.median(cpu[name]), 3)} for name, v in wall.items()}


def rank_bm25_scan(texts: list[str], queries: list[str]) -> dict:
    from rank_bm25 import BM25Okapi

    from retrieval._bm25 import tokenize

    t0 = time.perf_counter()
    bm = BM25Okapi([tokenize(t) for t in texts])
    build = time.perf_counter() - t0
    times = []
    for q in queries:
        t0 = time.perf_counter()
        scores = bm.get_scores(tokenize(q))
        np.argpartition(-scores, 50)[:50]
        times.append((time.perf_counter() - t0) * 1000)
    return {"build_s": round(build, 2), "p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wixqa", type=Path, required=True, help="WixQA JSONL (articles and questions).")
    parser.add_argument("--banking77", type=Path, help="Banking77 CSV (text,category) to widen the text pool.")
    parser.add_argument("--banking77-test", type=Path, help="Banking77 test CSV: extra queries.")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000, 50000], help="Knowledge-base sizes in chunks.")
    parser.add_argument("--pool", type=int, default=6000, help="Distinct texts embedded for the latency runs.")
    parser.add_argument("--queries", type=int, default=200, help="Queries timed per mode and size.")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--modes", nargs="*", default=["hybrid", "dense", "bm25"])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--rank-bm25-queries", type=int, default=30, help="Queries for the rank_bm25 comparison (0: skip).")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice, one per core).")
    parser.add_argument("--no-stages", action="store_true", help="Skip the per-step breakdown of hybrid search.")
    parser.add_argument("--store", type=Path, default=None,
                        help="Keep the Chroma folder here and reuse it on the next run (a size it already "
                             "exceeds is skipped) instead of filling a temporary one.")
    parser.add_argument("--json", action="store_true", help="Last line: all figures as one JSON object.")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    questions, articles_by_id = load_wixqa(args.wixqa)
    articles = list(articles_by_id.values())
    config = IngestConfig(progress=False)
    import torch

    results: dict = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "load_avg_start": os.getloadavg()[0]}
    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="lepton-bench-") as tmp:
        store = KnowledgeStore(path=args.store or tmp)
        if not args.skip_throughput:
            results["throughput"] = tp = throughput(store, articles, config)
            print(f"ingestion: {tp['chunks']} chunks (mean {tp['mean_chunk_chars']} chars): encoder alone "
                  f"{tp['encode_only_chunks_per_s']}/s, full ingestion {tp['ingest_chunks_per_s']}/s, "
                  f"ratio {tp['ratio']:.2f} (goal >= 0.8)", flush=True)

        if not args.sizes:
            args.sizes = []
        queries = [q.question for q in questions]
        if args.banking77_test:
            with args.banking77_test.open(newline="", encoding="utf-8") as fh:
                queries += [row["text"] for row in csv.DictReader(fh)]
        queries = queries[: args.queries]
        kb = "bench-latency"
        filled = store.count(kb, "bench") if store.exists(kb, "bench") else 0
        to_fill = any(size > filled for size in args.sizes)
        pool = text_pool(articles, args.banking77, config, args.pool) if to_fill else []
        t0 = time.perf_counter()
        pool_vectors = store.embedding.encode([t for _, t in pool])
        if pool:
            print(f"pool: {len(pool)} distinct texts embedded in {time.perf_counter() - t0:.1f}s", flush=True)
        rng = np.random.default_rng(0)
        results["latency"] = {}
        for size in sorted(args.sizes):
            if filled > size:
                print(f"{size} chunks: skipped, {args.store} already holds {filled}", flush=True)
                continue
            t0 = time.perf_counter()
            fill(store, kb, pool_vectors, pool, size, filled, rng)
            filled = size
            fill_s = time.perf_counter() - t0
            retriever = Retriever(store)
            t0 = time.perf_counter()
            retriever.warm(kb, "bench")
            build_s = time.perf_counter() - t0
            row = {"fill_s": round(fill_s, 1), "bm25_build_s": round(build_s, 2),
                   **latency(retriever, kb, queries, args.modes, args.k)}
            if not args.no_stages:
                row["stages"] = stages(retriever, kb, queries, args.k)
            if args.rank_bm25_queries:
                texts = [t for _, t, _ in store.iter_chunks(kb, "bench")]
                row["rank_bm25_scan"] = rank_bm25_scan(texts, queries[: args.rank_bm25_queries])
            results["latency"][size] = row
            line = ", ".join(f"{m} p50 {row[m]['p50_ms']} ms / p95 {row[m]['p95_ms']} ms" for m in args.modes)
            print(f"{size} chunks: {line}; BM25 index build {build_s:.1f}s", flush=True)
            for name, st in row.get("stages", {}).items():
                print(f"  {name:20s} p50 {st['p50_ms']:7.3f} ms  min {st['min_ms']:7.3f} ms  "
                      f"CPU p50 {st['cpu_p50_ms']:7.3f} ms", flush=True)
            if "rank_bm25_scan" in row:
                rb = row["rank_bm25_scan"]
                print(f"  rank_bm25 full scan (baseline): p50 {rb['p50_ms']} ms / p95 {rb['p95_ms']} ms; "
                      f"sparse BM25 p50 {row.get('bm25', {}).get('p50_ms')} ms", flush=True)
    results["load_avg_end"] = os.getloadavg()[0]
    print(f"load average {results['load_avg_end']:.2f} at end (above ~0.5 other work shared the cores)", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
