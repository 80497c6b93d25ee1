"""The tenant's recommender: co-purchases, repeat purchases and item text, ranked by a small trained model.

Scoring one customer works in two steps:

1. **Candidates**: the items the customer bought before, the items EASE
   (Steck 2019: a closed-form item-item regression on the customer x item
   purchase matrix, L2 ``EASE_LAMBDA``; the ``NEIGHBOURS`` strongest weights per
   item are kept) scores highest for their history, and the recently popular ones.
2. **Ranking**: a LightGBM LambdaRank model over features of each (customer,
   item) pair — how often (also weighted by recency, and in the last 90 days),
   since when and how long ago the customer bought it, its share of the
   customer's orders, the EASE score and rank, the item-kNN (co-purchase cosine)
   score, the item's popularity (all time and last 30 days) and how often its
   buyers buy it again, the cosine between the item's title embedding and the
   customer's (the project's sentence embeddings), and the customer's number of
   orders, mean days between orders and days since the last one.
   It learns from the data itself: features from everything before the last
   ``LABEL_DAYS`` days, labels from what each customer bought in those days.

A customer the model has never seen (or a conversation without one) gets items
by title similarity to what they asked for or liked, then popularity. Every
suggestion carries its reason from the signal that put it there: bought before,
often bought with an item of theirs, similar to an item, or popular.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..util import file_hash

__all__ = ["Recommender", "Suggestion", "train_recommender", "evaluate", "ModelStore", "EASE_LAMBDA"]

EASE_LAMBDA = 200.0
NEIGHBOURS = 100
LABEL_DAYS = 30
RECENT_DAYS = 30
EASE_CANDIDATES = 100
POPULAR_CANDIDATES = 30
RANKER = dict(n_estimators=100, learning_rate=0.03, num_leaves=15, min_child_samples=100, subsample=0.8,
              subsample_freq=1, colsample_bytree=0.8, verbose=-1, n_jobs=2)
LABEL_WINDOWS = 1
FEATURES = ["times_bought", "days_since_bought", "share_of_orders", "ease", "ease_rank", "log_popularity",
            "log_recent_popularity", "rebuy_rate", "orders", "days_since_last_order", "bought_before",
            "times_x_rebuy", "content", "knn", "days_since_first", "trend", "order_gap", "due",
            "decayed_times", "times_last_90_days"]
DECAY_DAYS = 60.0


def _ease(matrix, lam: float = EASE_LAMBDA, keep: int = NEIGHBOURS):  # noqa: ANN001, ANN202
    """EASE item-item weights, each item's ``keep`` largest kept (a sparse matrix)."""
    import numpy as np
    from scipy import sparse

    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    diag = np.diag_indices(gram.shape[0])
    gram[diag] += lam
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)
    weights[diag] = 0.0
    n = weights.shape[0]
    keep = min(keep, n - 1) if n > 1 else 0
    if keep <= 0:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    top = np.argpartition(-weights, keep - 1, axis=0)[:keep]  # per column: its strongest sources
    rows = top.ravel()
    cols = np.repeat(np.arange(n)[None, :], keep, axis=0).ravel()
    values = weights[rows, cols]
    mask = values > 0
    return sparse.csr_matrix((values[mask].astype(np.float32), (rows[mask], cols[mask])), shape=(n, n))


def _cosine(matrix, keep: int = NEIGHBOURS):  # noqa: ANN001, ANN202
    """Item-item cosine of co-purchases, each item's ``keep`` nearest kept (a sparse matrix)."""
    import numpy as np
    from scipy import sparse

    co = (matrix.T @ matrix).toarray().astype(np.float32)
    norms = np.sqrt(np.maximum(np.diag(co), 1e-9))
    co = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(co, 0.0)
    n = co.shape[0]
    keep = min(keep, n - 1) if n > 1 else 0
    if keep <= 0:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    top = np.argpartition(-co, keep - 1, axis=0)[:keep]
    rows = top.ravel()
    cols = np.repeat(np.arange(n)[None, :], keep, axis=0).ravel()
    values = co[rows, cols]
    mask = values > 0
    return sparse.csr_matrix((values[mask], (rows[mask], cols[mask])), shape=(n, n))


@dataclass
class History:
    """Purchase features as of one moment: what the ranker and the candidates read."""

    users: dict[str, int]
    bought: Any  # csr users x items, 1 where bought
    times: Any  # csr, number of orders with the item
    age: Any  # csr, days since the item was last bought (+1)
    weights: Any  # EASE, csr items x items
    popularity: Any  # buyers per item
    recent: Any  # buyers per item in the last RECENT_DAYS
    rebuy: Any  # share of an item's buyers who bought it in two orders or more
    orders: dict[str, int]
    last_order: dict[str, float]  # days before ``at``
    profiles: Any  # users x dim, mean title embedding of what they bought (normalised)
    first: Any  # csr, days since the item was first bought (+1)
    knn: Any  # items x items cosine of co-purchases, top NEIGHBOURS per item
    gap: dict[str, float]  # mean days between the user's orders (90 with one order)
    decayed: Any  # csr, orders with the item weighted exp(-days ago / DECAY_DAYS)
    last90: Any  # csr, orders with the item in the last 90 days

    @classmethod
    def build(cls, frame, items: dict[str, int], at, vectors) -> "History":  # noqa: ANN001
        import numpy as np
        from scipy import sparse

        users = {u: i for i, u in enumerate(sorted(frame["user"].unique()))}
        pairs = frame.groupby(["user", "item"]).agg(n=("order", "nunique"), last=("time", "max"),
                                                    first=("time", "min")).reset_index()
        rows = pairs["user"].map(users).to_numpy()
        cols = pairs["item"].map(items).to_numpy()
        shape = (len(users), len(items))
        bought = sparse.csr_matrix((np.ones(len(pairs), np.float32), (rows, cols)), shape=shape)
        times = sparse.csr_matrix((pairs["n"].to_numpy(np.float32), (rows, cols)), shape=shape)
        days = ((at - pairs["last"]).dt.total_seconds() / 86400).to_numpy(np.float32) + 1
        age = sparse.csr_matrix((days, (rows, cols)), shape=shape)
        first_days = ((at - pairs["first"]).dt.total_seconds() / 86400).to_numpy(np.float32) + 1
        first = sparse.csr_matrix((first_days, (rows, cols)), shape=shape)
        lines = frame.drop_duplicates(["user", "item", "order"])
        ago = ((at - lines["time"]).dt.total_seconds() / 86400).to_numpy(np.float32)
        lr, lc = lines["user"].map(users).to_numpy(), lines["item"].map(items).to_numpy()
        decayed = sparse.csr_matrix((np.exp(-ago / DECAY_DAYS), (lr, lc)), shape=shape)
        last90 = sparse.csr_matrix(((ago <= 90).astype(np.float32), (lr, lc)), shape=shape)
        popularity = np.asarray(bought.sum(axis=0)).ravel()
        recent_pairs = frame[frame["time"] >= at - np.timedelta64(RECENT_DAYS, "D")].groupby("item")["user"].nunique()
        recent = np.zeros(len(items), np.float32)
        recent[recent_pairs.index.map(items).to_numpy()] = recent_pairs.to_numpy()
        again = np.asarray((times >= 2).sum(axis=0)).ravel()
        rebuy = again / np.maximum(popularity, 1)
        per_user = frame.groupby("user").agg(orders=("order", "nunique"), last=("time", "max"), start=("time", "min"))
        span = (per_user["last"] - per_user["start"]).dt.total_seconds() / 86400
        gap = (span / (per_user["orders"] - 1).clip(lower=1)).where(per_user["orders"] > 1, 90.0)
        profiles = np.asarray(bought @ vectors) if vectors is not None else np.zeros((len(users), 1), np.float32)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        profiles = profiles / np.maximum(norms, 1e-9)
        return cls(users, bought, times, age, _ease(bought), popularity, recent, rebuy,
                   per_user["orders"].astype(int).to_dict(),
                   ((at - per_user["last"]).dt.total_seconds() / 86400).to_dict(), profiles.astype(np.float32),
                   first, _cosine(bought), gap.to_dict(), decayed, last90)

    def candidates(self, user: str):  # noqa: ANN201
        """Candidate item indices for a known user, and their feature rows."""
        import numpy as np

        r = self.users[user]
        history = self.bought[r]
        ease = np.asarray((history @ self.weights).todense()).ravel()
        k = min(EASE_CANDIDATES, len(ease) - 1)
        top_ease = np.argpartition(-ease, k)[:k] if k > 0 else np.arange(len(ease))
        p = min(POPULAR_CANDIDATES, len(self.recent) - 1)
        top_recent = np.argpartition(-self.recent, p)[:p] if p > 0 else np.arange(len(self.recent))
        items = np.unique(np.concatenate([history.indices, top_ease, top_recent]))
        return items, self.features(user, items, ease)

    def features(self, user: str, items, ease, vectors=None):  # noqa: ANN001, ANN201
        import numpy as np

        r = self.users[user]
        times = np.asarray(self.times[r].todense()).ravel()[items]
        age = np.asarray(self.age[r].todense()).ravel()[items]
        orders = self.orders[user]
        order_of_ease = np.argsort(np.argsort(-ease[items]))
        content = (self._vectors[items] @ self.profiles[r]) if getattr(self, "_vectors", None) is not None \
            else np.zeros(len(items), np.float32)
        columns = [
            times, np.where(times > 0, age, 999.0), times / max(orders, 1), ease[items], order_of_ease,
            np.log1p(self.popularity[items]), np.log1p(self.recent[items]), self.rebuy[items],
            np.full(len(items), orders, np.float32), np.full(len(items), self.last_order[user], np.float32),
            (times > 0).astype(np.float32), times * self.rebuy[items], content,
        ]
        knn = np.asarray((self.bought[r] @ self.knn)[:, items].todense()).ravel()
        first = np.asarray(self.first[r].todense()).ravel()[items]
        gap = self.gap[user]
        columns += [knn, np.where(times > 0, first, 999.0), self.recent[items] / np.maximum(self.popularity[items], 1),
                    np.full(len(items), gap, np.float32), np.full(len(items), self.last_order[user] / max(gap, 1.0)),
                    np.asarray(self.decayed[r].todense()).ravel()[items], np.asarray(self.last90[r].todense()).ravel()[items]]
        return np.column_stack(columns).astype(np.float32)


@dataclass
class Suggestion:
    item: str
    title: str
    price: float | None
    reason: str
    score: float


@dataclass
class Recommender:
    version: str
    items: list[str]
    catalog: Any  # DataFrame indexed by item: title, price, category
    history: History
    ranker: Any
    vectors: Any  # items x dim, normalised title embeddings (or None)
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.items)}
        self.history._vectors = self.vectors

    # -- scores --------------------------------------------------------------------
    def _known(self, user: str):  # noqa: ANN202
        items, feats = self.history.candidates(user)
        return items, self.ranker.predict(feats)

    def recommend(self, user: str | None = None, *, k: int = 5,  # noqa: C901
                  matches: Mapping[str, float] | None = None, like: Sequence[str] = (), exclude: Sequence[str] = (),
                  max_price: float | None = None, min_price: float | None = None,
                  keyword: str | None = None) -> list[Suggestion]:
        """Up to ``k`` catalogue items for ``user`` (or an unknown customer), best first.

        ``matches`` are the items a search of the catalogue found for what the shopper
        asked for, with their similarity (:class:`.catalog_index.CatalogIndex`)."""
        import numpy as np

        n = len(self.items)
        score = np.full(n, -np.inf, np.float64)
        reason = np.array(["popular with customers"] * n, dtype=object)
        pop = np.log1p(self.history.popularity) / max(np.log1p(self.history.popularity).max(), 1e-9)
        liked = [self.index[i] for i in like if i in self.index]
        query = np.zeros(n, np.float64)
        for item, similarity in (matches or {}).items():
            if item in self.index:
                query[self.index[item]] = similarity
        if user is not None and user in self.history.users:
            items, ranked = self._known(user)
            r = self.history.users[user]
            bought = self.history.bought[r].indices
            score[items] = ranked
            # the reason for a new item: the customer's item with the strongest EASE weight to it
            links = self.history.weights[bought][:, items].toarray()
            strongest = links.argmax(axis=0)
            for column, i in enumerate(items):
                if links[strongest[column], column] > 0:
                    reason[i] = f"often bought with {self.catalog.at[self.items[bought[strongest[column]]], 'title']}"
            reason[bought] = "you bought this before"
            # what the customer asks for now counts on top of their history
            if matches is not None:
                score = np.where(np.isfinite(score), score + 2.0 * query, score)
                fresh = ~np.isfinite(score)
                score[fresh] = query[fresh] * 2.0 - 1.0 + 0.1 * pop[fresh]
        else:
            score = 0.2 * pop + query
            if matches is not None:
                reason[query > 0.2 * pop] = "matches what you asked for"
        if liked:
            like_vec = self.vectors[liked].mean(axis=0) if self.vectors is not None else None
            co = np.asarray(self.history.weights[liked].sum(axis=0)).ravel()
            sim = self.vectors @ (like_vec / max(np.linalg.norm(like_vec), 1e-9)) if like_vec is not None else 0
            boost = sim + (co / co.max() if co.max() > 0 else 0)
            score = np.where(np.isfinite(score), score, 0) + 2.0 * boost
            name = self.catalog.at[self.items[liked[0]], "title"]
            strong = boost >= 0.6 * boost.max()  # the items the likeness put near the top
            reason[strong] = f"similar to {name}"
        prices = self.catalog["price"].reindex(self.items).to_numpy(dtype=float)
        allowed = np.ones(n, bool)
        if max_price is not None:
            allowed &= np.nan_to_num(prices, nan=np.inf) <= max_price
        if min_price is not None:
            allowed &= np.nan_to_num(prices, nan=-np.inf) >= min_price
        for item in list(exclude) + list(like):
            if item in self.index:
                allowed[self.index[item]] = False
        if keyword:
            titles = self.catalog["title"].reindex(self.items).fillna("").str.lower()
            allowed &= titles.str.contains(keyword.lower(), regex=False).to_numpy()
        score = np.where(allowed, score, -np.inf)
        order = [i for i in np.argsort(-score) if np.isfinite(score[i])][:k]
        return [Suggestion(self.items[i], str(self.catalog.at[self.items[i], "title"]),
                           None if np.isnan(prices[i]) else round(float(prices[i]), 2), str(reason[i]),
                           round(float(score[i]), 4)) for i in order]

    def describe(self, item: str, reason: str) -> Suggestion:
        price = self.catalog.at[item, "price"]
        return Suggestion(item, str(self.catalog.at[item, "title"]), None if price != price else round(float(price), 2),
                          reason, 0.0)

    def rank_all(self, user: str):  # noqa: ANN201
        """Scores over every item for ``user`` (evaluation): candidates by the ranker, the rest last."""
        import numpy as np

        score = np.full(len(self.items), -1e9)
        items, ranked = self._known(user)
        score[items] = ranked
        return score


def _embed(titles: Sequence[str]):  # noqa: ANN202
    """Normalised title embeddings with the project's sentence-embedding model."""
    import numpy as np

    from retrieval.embeddings import load_encoder

    vectors = load_encoder().encode(list(titles), batch_size=128, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, np.float32)


def train_recommender(frame, catalog, *, data_hash: str = "", source: str = "",  # noqa: ANN001
                      embed: Callable[[Sequence[str]], Any] | None = _embed,
                      progress: Callable[[str], None] | None = None) -> Recommender:
    """Fit the hybrid recommender on cleaned interactions and a catalogue (see the module docstring)."""
    import numpy as np
    import pandas as pd
    import lightgbm as lgb

    started = time.perf_counter()
    known = catalog.index.intersection(frame["item"].unique()) if len(catalog) else pd.Index([])
    frame = frame[frame["item"].isin(catalog.index)] if len(known) else frame
    items = sorted(set(catalog.index) | set(frame["item"].unique()))
    index = {item: i for i, item in enumerate(items)}
    catalog = catalog.reindex(items)
    catalog["title"] = catalog["title"].fillna(pd.Series(items, index=items))
    if progress:
        progress(f"embedding {len(items)} item titles...")
    vectors = embed(catalog["title"].astype(str).tolist()) if embed is not None else None
    end = frame["time"].max()
    ranker = None
    if progress:
        progress("learning the ranking from the last 30 days...")
    rows, labels, groups = [], [], []
    for window in range(LABEL_WINDOWS):
        cut = end - pd.Timedelta(days=LABEL_DAYS * (window + 1))
        early = frame[frame["time"] < cut]
        if early["user"].nunique() < 20:
            break
        past = History.build(early, index, cut, vectors)
        past._vectors = vectors
        later = frame[(frame["time"] >= cut) & (frame["time"] < cut + pd.Timedelta(days=LABEL_DAYS))]
        future = later.groupby("user")["item"].apply(lambda s: {index[i] for i in s})
        for user, bought in future.items():
            if user not in past.users:
                continue
            cand, feats = past.candidates(user)
            y = np.isin(cand, list(bought)).astype(int)
            if y.any():
                rows.append(feats)
                labels.append(y)
                groups.append(len(cand))
    if len(groups) >= 10:
        ranker = lgb.LGBMRanker(**RANKER).fit(np.vstack(rows), np.concatenate(labels), group=groups)
    if ranker is None:  # too little history to learn from: times bought, then popularity
        ranker = _FallbackRanker()
    now = end + pd.Timedelta(seconds=1)
    history = History.build(frame, index, now, vectors)
    version = f"recommend-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{data_hash[:8] or 'data'}"
    card = {
        "version": version, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "source": source,
        "data_sha256": data_hash, "items": len(items), "users": len(history.users),
        "purchases": int(len(frame)), "last_purchase": str(end), "ranker": type(ranker).__name__,
        "features": FEATURES, "train_seconds": round(time.perf_counter() - started, 2),
    }
    return Recommender(version, items, catalog[["title", "price", "category"]], history, ranker, vectors, card)


class _FallbackRanker:
    """Used when the data is too short to learn a ranking: times bought, then popularity."""

    def predict(self, feats):  # noqa: ANN001, ANN201
        return feats[:, 0] + 1e-3 * feats[:, 5]


# -- evaluation ----------------------------------------------------------------------------
def _metrics(ranked: dict[str, Any], targets: dict[str, set[int]], seen: dict[str, set[int]], new: bool) -> dict[str, float]:
    import numpy as np

    discount = 1 / np.log2(np.arange(2, 12))
    hr = recall = ndcg = 0.0
    n = 0
    for user, wanted in targets.items():
        scores = np.array(ranked[user], dtype=np.float64, copy=True)
        wanted = set(wanted)
        if new:
            wanted -= seen[user]
            if not wanted:
                continue
            scores[list(seen[user])] = -np.inf
        top = np.argpartition(-scores, 10)[:10]
        top = top[np.argsort(-scores[top])]
        hits = np.isin(top, list(wanted))
        hr += bool(hits.any())
        recall += hits.sum() / min(len(wanted), 10)
        ndcg += (hits * discount).sum() / discount[: min(len(wanted), 10)].sum()
        n += 1
    n = max(n, 1)
    return {"hr@10": round(hr / n, 4), "recall@10": round(recall / n, 4), "ndcg@10": round(ndcg / n, 4)}


def _percentiles(ms: list[float]) -> dict[str, float]:
    import numpy as np

    return {"p50": round(float(np.median(ms)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}


def evaluate(frame, catalog, split, *, embed=_embed, progress=None) -> dict[str, Any]:  # noqa: ANN001
    """Train on interactions before ``split``; for each user active on both sides, rank
    every item and compare the top 10 with what they bought from ``split`` on."""
    import numpy as np

    train = frame[frame["time"] < split]
    test = frame[frame["time"] >= split]
    if train.empty or test.empty:
        raise ValueError(f"the split date {split.date()} leaves no interactions on one side")
    t0 = time.perf_counter()
    model = train_recommender(train, catalog, embed=embed, progress=progress)
    train_seconds = time.perf_counter() - t0
    h = model.history
    index = model.index
    test = test[test["item"].isin(index) & test["user"].isin(h.users)]
    targets = test.groupby("user")["item"].apply(lambda s: {index[i] for i in s}).to_dict()
    if not targets:
        raise ValueError("no user bought something on both sides of the split date")
    seen = {u: set(h.bought[h.users[u]].indices) for u in targets}
    if progress:
        progress(f"ranking every item for {len(targets)} users...")
    latencies, ours = [], {}
    for user in targets:
        t = time.perf_counter()
        ours[user] = model.rank_all(user)
        latencies.append((time.perf_counter() - t) * 1000)
    served = []  # what a conversation or the JSON action runs: top 5 with their reasons
    for user in list(targets)[:300]:
        t = time.perf_counter()
        model.recommend(user, k=5)
        served.append((time.perf_counter() - t) * 1000)
    pop = h.popularity.astype(np.float64)
    popularity = {u: pop for u in targets}
    repeat = {u: np.asarray(h.times[h.users[u]].todense()).ravel() + 1e-3 * pop / max(pop.max(), 1) for u in targets}
    norms = np.sqrt(np.maximum(pop, 1e-9))
    co = (h.bought.T @ h.bought).tocsr().astype(np.float64)
    co.setdiag(0)
    co = co.multiply(1 / norms[:, None]).multiply(1 / norms[None, :]).tocsr()
    item_knn = {u: np.asarray((h.bought[h.users[u]] @ co).todense()).ravel() + 1e-6 * pop for u in targets}
    report: dict[str, Any] = {"split_date": str(split.date()), "test_users": len(targets),
                              "items": len(model.items), "train_seconds": round(train_seconds, 2),
                              "rank_all_ms": _percentiles(latencies), "recommend_ms": _percentiles(served)}
    for new in (False, True):
        suffix = "_new" if new else ""
        for key, value in _metrics(ours, targets, seen, new).items():
            report[key + suffix] = value
        report["users" + suffix] = sum(1 for u in targets if not new or targets[u] - seen[u])
    baselines: dict[str, dict[str, float]] = {}
    for name, ranked in (("popularity", popularity), ("repeat", repeat), ("item_knn", item_knn)):
        entry: dict[str, float] = {}
        for new in (False, True):
            suffix = "_new" if new else ""
            entry.update({k + suffix: v for k, v in _metrics(ranked, targets, seen, new).items()})
        baselines[name] = entry
    report["baselines"] = baselines
    return report


# -- the tenant's models ------------------------------------------------------------------
class ModelStore:
    """A tenant's recommender: ``<tenant dir>/recommender/{model.pkl,card.json}``, replaced atomically,
    and its catalogue collection, ``<tenant dir>/catalog-index/<model version>/`` (Chroma)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "recommender"
        self.index_root = folder / "catalog-index"
        self._cache: tuple[int, Recommender] | None = None
        self._index = None

    def catalog(self, model: Recommender):  # noqa: ANN201 - CatalogIndex
        """The model's catalogue collection in the vector store, written first if it is missing."""
        from .catalog_index import CatalogIndex

        folder = self.index_root / model.version
        if self._index is not None and self._index.folder == folder:
            return self._index
        self._write_index(model)
        self._index = CatalogIndex(folder)
        return self._index

    def _write_index(self, model: Recommender) -> None:
        import numpy as np

        from .catalog_index import CatalogIndex

        folder = self.index_root / model.version
        if (folder / "chroma.sqlite3").is_file():
            return
        self.index_root.mkdir(parents=True, exist_ok=True)
        vectors = model.vectors if model.vectors is not None else _embed(model.catalog["title"].astype(str).tolist())
        prices = model.catalog["price"].reindex(model.items).to_numpy(dtype=float)
        staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=self.index_root))
        try:
            CatalogIndex.build(staging, model.items, model.catalog["title"].reindex(model.items).tolist(),
                               [None if np.isnan(p) else float(p) for p in prices], vectors)
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def save(self, model: Recommender) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_index(model)  # before the model, so a loaded model always finds its catalogue
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=self.folder))
        try:
            with (staging / "model.pkl").open("wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            (staging / "card.json").write_text(json.dumps(model.card, indent=2, default=str), encoding="utf-8")
            old = None
            if self.path.exists():
                old = self.folder / f".old-{os.getpid()}-{time.time_ns()}"
                os.rename(self.path, old)
            os.rename(staging, self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune_indexes(keep=model.version)
        return self.path

    def _prune_indexes(self, keep: str) -> None:
        """Drop catalogue collections of replaced models, but the newest other one: a server
        may still answer from the previous model until its next message."""
        others = sorted((p for p in self.index_root.iterdir() if p.is_dir() and p.name not in (keep,)
                         and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
        for stale in others[:-1]:
            shutil.rmtree(stale, ignore_errors=True)

    def load(self) -> Recommender | None:
        file = self.path / "model.pkl"
        try:
            stamp = file.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        with file.open("rb") as fh:
            model = pickle.load(fh)
        self._cache = (stamp, model)
        return model

    def card(self) -> dict[str, Any] | None:
        file = self.path / "card.json"
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None

