"""Latency of a shopper's request on the demo recommender: embedding the words, the Chroma
catalogue search within a price limit, and the ranking (60 requests, six phrasings).

    python benchmarks/bench_recommend_query.py
"""

import pathlib
import tempfile
import time

import numpy as np

from skills.recommendation import skill
from skills.testing import SkillHarness

h = SkillHarness(skill, pathlib.Path(tempfile.mkdtemp()))
h.skill.prepare_demo(h.env)
store = h.skill.store(h.env, "default")
model = store.load()
queries = ["a candle", "gift for a gardener", "christmas decorations", "a lunch bag", "tea set", "something for a baby"]
search_ms, total_ms = [], []
for query in queries * 10:
    start = time.perf_counter()
    vector = h.skill.embed(query)
    embedded = time.perf_counter()
    found = store.catalog(model).search(vector, max_price=20)
    searched = time.perf_counter()
    model.recommend(None, k=5, matches=found, max_price=20)
    done = time.perf_counter()
    search_ms.append((searched - embedded) * 1000)
    total_ms.append((done - start) * 1000)
print(f"catalogue items {len(model.items)}; Chroma search p50/p95 {np.median(search_ms):.1f}/"
      f"{np.percentile(search_ms, 95):.1f} ms; embed + search + rank p50/p95 {np.median(total_ms):.1f}/"
      f"{np.percentile(total_ms, 95):.1f} ms")
