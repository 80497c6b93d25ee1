"""Intent classification for customer service: which of a tenant's intents
(``card_arrival``, ``refund_not_showing_up``, ...) a message is about.

A classifier is trained from a CSV of ``text,label`` rows (a ``category`` column
is accepted for the label, as in banking77): TF-IDF word 1-2-grams and character
2-5-grams (within word boundaries), side by side with the sentence embedding
(all-MiniLM-L6-v2, the router's encoder) scaled by a weight, into a linear SVM.
The weight and the regularisation ``C`` are chosen by stratified
cross-validation on the training rows only (their effect on banking77:
benchmarks/README.md). It is saved with joblib as ``intents.pkl`` in the
tenant's folder of the skill (``SkillEnv.tenant_dir``), together with its label
list and how it was trained.
"""

from __future__ import annotations

import csv
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "IntentClassifier",
    "IntentDataError",
    "IntentMatch",
    "SentenceEmbedder",
    "load_intent_csv",
    "train_intents",
    "intents_path",
    "actions_path",
    "load_actions",
    "validate_actions",
    "save_actions",
    "TenantIntents",
    "C_GRID",
    "EMBEDDING_WEIGHTS",
]

#: Regularisation strengths tried by cross-validation (smaller = stronger).
C_GRID = (0.3, 1.0)
#: Weights of the embedding block against the TF-IDF blocks; 0 means TF-IDF only.
EMBEDDING_WEIGHTS = (1.0, 2.0)
#: Folds of the cross-validation; fewer when the rarest label has fewer examples.
CV_FOLDS = 5
LABEL_COLUMNS = ("label", "category", "intent")


class IntentDataError(ValueError):
    """A training or test CSV that cannot be used; the message says what to fix."""


def load_intent_csv(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Texts and labels from a CSV with a header: ``text`` and ``label`` (or ``category``)."""
    path = Path(path)
    if not path.is_file():
        raise IntentDataError(f"no such file: {path}")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "text" not in columns:
            raise IntentDataError(f"{path}: needs a header with a 'text' column, got {columns}")
        label = next((c for c in LABEL_COLUMNS if c in columns), None)
        if label is None:
            raise IntentDataError(f"{path}: needs a 'label' (or 'category') column, got {columns}")
        names = dict(zip(columns, reader.fieldnames or []))
        texts, labels = [], []
        for number, row in enumerate(reader, start=2):
            text = (row.get(names["text"]) or "").strip()
            value = (row.get(names[label]) or "").strip()
            if not text or not value:
                raise IntentDataError(f"{path}:{number}: empty text or label")
            texts.append(text)
            labels.append(value)
    if not texts:
        raise IntentDataError(f"{path}: no rows")
    return texts, labels


class SentenceEmbedder:
    """A scikit-learn transformer: texts to unit sentence vectors times ``weight``.

    With a ``memo`` dict, vectors are memoised per text so cross-validation embeds
    each training text once; a trained classifier has none (it would grow with every
    message). Neither the encoder nor the memo is pickled: the encoder is reloaded
    from ``model_path``, None meaning the bundled one.
    """

    def __init__(self, model_path: str | None = None, weight: float = 1.0, memo: dict[str, Any] | None = None):
        self.model_path = model_path
        self.weight = weight
        self._memo = memo

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"model_path": self.model_path, "weight": self.weight}

    def set_params(self, **params: Any) -> "SentenceEmbedder":
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit(self, texts, labels=None) -> "SentenceEmbedder":  # noqa: ANN001 - sklearn signature
        return self

    def transform(self, texts):  # noqa: ANN001, ANN201 - sklearn signature
        import numpy as np

        from retrieval.query_encoder import load_query_encoder

        texts = list(texts)
        memo = self._memo if self._memo is not None else {}
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            vectors = load_query_encoder(self.model_path).encode(
                missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False
            )
            memo.update(zip(missing, vectors))
        return self.weight * np.vstack([memo[t] for t in texts]).astype(np.float32)

    def __getstate__(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "weight": self.weight}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)


def _pipeline(C: float, weight: float = 0.0, memo: dict[str, Any] | None = None):  # noqa: ANN202
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.svm import LinearSVC

    blocks = [
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
    ]
    if weight > 0:
        blocks.append(("sentence", SentenceEmbedder(weight=weight, memo=memo)))
    return Pipeline([("features", FeatureUnion(blocks)), ("svm", LinearSVC(C=C))])


@dataclass
class IntentClassifier:
    """A trained intent classifier, its labels and its training record."""

    pipeline: Any
    labels: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(label) for label in self.pipeline.predict(list(texts))]

    def predict_one(self, text: str) -> tuple[str, float]:
        """The label and its one-vs-rest SVM score (above 0: the classifier says "this one")."""
        scores = self.pipeline.decision_function([text])[0]
        classes = list(self.pipeline.classes_)
        if len(classes) == 2:  # binary SVMs give one score for the second class
            value = float(scores)
            return (str(classes[1]), value) if value >= 0 else (str(classes[0]), -value)
        best = int(scores.argmax())
        return str(classes[best]), float(scores[best])

    def accuracy(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        predicted = self.predict(texts)
        return sum(p == t for p, t in zip(predicted, labels)) / len(labels)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a reader never sees half a file)."""
        import joblib

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            joblib.dump({"pipeline": self.pipeline, "labels": self.labels, "metadata": self.metadata}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "IntentClassifier":
        import joblib

        path = Path(path)
        if not path.is_file():
            raise IntentDataError(f"no intent classifier at {path}; train one with `lepton customer-service train-intents`")
        saved = joblib.load(path)
        return cls(saved["pipeline"], list(saved["labels"]), dict(saved["metadata"]))


def intents_path(tenant_dir: str | os.PathLike) -> Path:
    """Where a tenant's classifier lives, given the tenant's folder of the skill."""
    return Path(tenant_dir) / "intents.pkl"


# -- what to do per intent --------------------------------------------------------
#
# A tenant may attach an action to some intents (JSON, given to train-intents
# with --actions):
#     {"lost_or_stolen_card": {"handoff": true},
#      "card_arrival": {"reply": "New cards arrive within 5 working days. ..."}}
# "handoff" hands the conversation to a person at once; "reply" answers with the
# tenant's own text instead of the model. Intents without an action get the
# normal grounded answer. An action is taken only when the classifier is
# confident (one-vs-rest score above MIN_ACTION_SCORE).

#: Smallest SVM score at which an intent's action is taken.
MIN_ACTION_SCORE = 0.0


def actions_path(tenant_dir: str | os.PathLike) -> Path:
    return Path(tenant_dir) / "intent_actions.json"


def validate_actions(actions: Any, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Check an actions mapping against the classifier's labels; return it cleaned."""
    if not isinstance(actions, dict):
        raise IntentDataError("actions must be a JSON object of intent -> {\"reply\": text} or {\"handoff\": true}")
    cleaned: dict[str, dict[str, Any]] = {}
    for label, action in actions.items():
        if label not in labels:
            raise IntentDataError(f"action for unknown intent {label!r}; the classifier knows: {', '.join(labels)}")
        if action == {"handoff": True}:
            cleaned[label] = {"handoff": True}
        elif isinstance(action, dict) and set(action) == {"reply"} and isinstance(action["reply"], str) and action["reply"].strip():
            cleaned[label] = {"reply": action["reply"].strip()}
        else:
            raise IntentDataError(f"action for {label!r} must be {{\"reply\": \"non-empty text\"}} or {{\"handoff\": true}}")
    return cleaned


def load_actions(path: str | os.PathLike) -> Any:
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IntentDataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IntentDataError(f"{path}: not valid JSON ({exc})") from None


def save_actions(path: str | os.PathLike, actions: dict[str, dict[str, Any]]) -> Path:
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(actions, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


class TenantIntents:
    """Tenants' trained classifiers and actions, loaded on first use and reloaded
    when retrained (file modification times), so the server picks up a
    `lepton customer-service train-intents` without a restart."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[float, float], IntentClassifier, dict]] = {}

    def classify(self, tenant_dir: str | os.PathLike, text: str) -> IntentMatch | None:
        """The message's intent by the tenant's classifier, or None when it has none."""
        model_file = intents_path(tenant_dir)
        if not model_file.is_file():
            return None
        action_file = actions_path(tenant_dir)
        stamp = (model_file.stat().st_mtime, action_file.stat().st_mtime if action_file.is_file() else 0.0)
        key = str(tenant_dir)
        cached = self._cache.get(key)
        if cached is None or cached[0] != stamp:
            classifier = IntentClassifier.load(model_file)
            actions = load_actions(action_file) if action_file.is_file() else {}
            cached = (stamp, classifier, actions)
            self._cache[key] = cached
        _, classifier, actions = cached
        label, score = classifier.predict_one(text)
        action = actions.get(label) if score > MIN_ACTION_SCORE else None
        return IntentMatch(label, score, action, classifier.metadata.get("trained_at"))


@dataclass(frozen=True)
class IntentMatch:
    label: str
    score: float
    #: The tenant's action for this intent ({"reply": ...} or {"handoff": True}), if any.
    action: dict[str, Any] | None
    #: When the classifier was trained: the version of audited decisions.
    version: str | None


def train_intents(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    grid: Sequence[float] = C_GRID,
    weights: Sequence[float] = EMBEDDING_WEIGHTS,
    folds: int = CV_FOLDS,
    source: str | None = None,
) -> IntentClassifier:
    """Pick ``C`` and the embedding weight by stratified cross-validation on these rows,
    then fit on all of them. ``weights=(0.0,)`` trains TF-IDF only."""
    import sklearn
    from sklearn.model_selection import StratifiedKFold

    if len(texts) != len(labels):
        raise IntentDataError(f"{len(texts)} texts but {len(labels)} labels")
    label_list = sorted(set(labels))
    if len(label_list) < 2:
        raise IntentDataError("training data needs at least 2 different labels")
    started = time.perf_counter()
    rarest = min(list(labels).count(label) for label in label_list)
    folds = min(folds, rarest)
    texts, labels = list(texts), list(labels)
    memo: dict[str, Any] = {}  # each text is embedded once for every fold and setting
    configs = [(C, w) for w in weights for C in grid]
    cv_scores: dict[str, float] = {}
    if folds >= 2 and len(configs) > 1:
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(texts, labels))
        for C, w in configs:
            correct = 0
            for train_rows, held_rows in splits:
                model = _pipeline(C, w, memo).fit([texts[i] for i in train_rows], [labels[i] for i in train_rows])
                predicted = model.predict([texts[i] for i in held_rows])
                correct += sum(p == labels[i] for p, i in zip(predicted, held_rows))
            cv_scores[f"C={C},weight={w}"] = round(correct / len(texts), 4)
        # Ties go to the stronger regularisation and the lighter embedding block.
        best_C, best_w = max(configs, key=lambda c: (cv_scores[f"C={c[0]},weight={c[1]}"], -c[0], -c[1]))
    else:  # too few examples per label to cross-validate: the first setting
        best_C, best_w = configs[0]
    pipeline = _pipeline(best_C, best_w, memo).fit(texts, labels)
    for _, block in pipeline.named_steps["features"].transformer_list:
        if isinstance(block, SentenceEmbedder):
            block._memo = None
    metadata = {
        "model": "tfidf(word 1-2, char_wb 2-5)" + (" + all-MiniLM-L6-v2" if best_w > 0 else "") + " -> LinearSVC",
        "C": best_C,
        "embedding_weight": best_w,
        "cv_folds": folds if cv_scores else 0,
        "cv_accuracy": cv_scores,
        "examples": len(texts),
        "labels": len(label_list),
        "source": source,
        "train_seconds": round(time.perf_counter() - started, 2),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }
    return IntentClassifier(pipeline, label_list, metadata)
