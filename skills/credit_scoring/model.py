"""Credit models: trained from a tenant's raw CSV, scored with reasons and counterfactuals.

Training (:func:`train_model`) reads the columns as they come: numbers are
numeric features, a few distinct texts are categories; identifiers, empty and
constant columns are left out and said so; protected attributes (sex, marital
status, nationality, ... by name, plus ``protected=``) are never features. Two
interpretable, regularised model families are cross-validated on the same
stratified 5 folds, and the one with the higher AUC is fitted on all rows:

- ``scorecard``: optbinning's optimal binning, weight-of-evidence features
  (variables of information value below 0.02 dropped) and an L2 logistic
  regression: every feature adds points by its bin;
- ``gbm``: LightGBM with shallow trees, monotone in each numeric feature whose
  rank correlation with default is clear (|rho| > 0.03), in its direction.

The cut-off is a probability of default: given, or the one that minimises the
expected cost on the out-of-fold predictions when approving a bad applicant
costs ``bad_cost`` times declining a good one. Scores are points: ``base_score``
at ``base_odds`` (good:bad) and ``pdo`` points to double the odds.

Explanations are model-agnostic, so they hold for both families:

- a **reason** is a feature whose most favourable value (among the values seen
  in training) would raise the applicant's score; its ``points`` are how many.
  For the additive scorecard this is the standard "points below the maximum";
- a **counterfactual** is the smallest change to *actionable* features (never
  protected attributes, never age) that brings a declined applicant to the
  cut-off: one feature if one suffices, otherwise two; distance is measured in
  interquartile ranges for numbers and 1 for a changed category.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..util import file_hash

__all__ = [
    "CreditDataError",
    "Feature",
    "Assessment",
    "CreditModel",
    "Scaling",
    "read_table",
    "train_model",
    "Registry",
    "PROTECTED_PATTERN",
]

#: Column names treated as protected attributes whatever the caller says.
PROTECTED_PATTERN = re.compile(
    r"(^|_|\b)(sex|gender|marital|marriage|married|race|ethnic\w*|religio\w*|nationality|"
    r"national_origin|foreign\w*|personal_status|disab\w*|pregnan\w*)($|_|\b)",
    re.I,
)
AGE_PATTERN = re.compile(r"(^|_|\b)age($|_|\b)", re.I)
ID_PATTERN = re.compile(r"(^|_|\b)(id|uuid|key|ref|number_id)($|_|\b)", re.I)
#: A text column with more distinct values than this is not a usable category.
MAX_CATEGORIES = 50
FOLDS = 5
MIN_IV = 0.02
SCORECARD_C = 0.1
GBM_PARAMS = dict(n_estimators=300, learning_rate=0.05, num_leaves=16, min_child_samples=50, subsample=0.8,
                  subsample_freq=1, colsample_bytree=0.7, reg_lambda=5.0, verbose=-1)
MONOTONE_RHO = 0.03


class CreditDataError(ValueError):
    """The data or options cannot train a model; the message is one line for the user."""


@dataclass(frozen=True)
class Scaling:
    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    def points(self, pd_: float) -> int:
        p = min(max(float(pd_), 1e-6), 1 - 1e-6)
        factor = self.pdo / math.log(2)
        offset = self.base_score - factor * math.log(self.base_odds)
        return int(round(offset + factor * math.log((1 - p) / p)))


@dataclass
class Feature:
    name: str
    kind: str  # "numeric" | "categorical"
    #: Categories as in the training file (categorical only).
    values: list[str] = field(default_factory=list)
    integer: bool = False
    #: 25th and 75th percentile (numeric): distances are in their gap.
    q25: float = 0.0
    q75: float = 1.0
    low: float = 0.0
    high: float = 0.0
    actionable: bool = True
    #: Values tried for reasons and counterfactuals.
    candidates: list[Any] = field(default_factory=list)

    def scale(self) -> float:
        gap = self.q75 - self.q25
        return gap if gap > 0 else max(abs(self.high - self.low) / 4, 1.0)

    def coerce(self, value: Any) -> Any:
        """``value`` as this feature holds it; ValueError with a user-facing message otherwise."""
        if self.kind == "numeric":
            if isinstance(value, bool) or value is None:
                raise ValueError(f"{self.name} must be a number")
            try:
                number = float(str(value).replace(",", "").strip()) if isinstance(value, str) else float(value)
            except ValueError:
                raise ValueError(f"{self.name} must be a number, not {value!r}") from None
            if not math.isfinite(number):
                raise ValueError(f"{self.name} must be a finite number")
            return int(round(number)) if self.integer else number
        text = str(value)
        if text in self.values:
            return text
        folded = {v.casefold(): v for v in self.values}
        if text.casefold().strip() in folded:
            return folded[text.casefold().strip()]
        raise ValueError(f"{self.name} must be one of: {'; '.join(self.values)}")


@dataclass
class Assessment:
    decision: str  # "approve" | "decline"
    probability_of_default: float
    score: int
    cutoff_score: int
    #: [{"feature", "value", "points"}], the largest first.
    reasons: list[dict[str, Any]]
    #: {"changes": [{"feature", "from", "to"}], "score", "probability_of_default"} or None.
    counterfactual: dict[str, Any] | None
    version: str


def _is_numeric(series) -> bool:  # noqa: ANN001
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def read_table(path: Path):  # noqa: ANN201 - pandas.DataFrame
    """A CSV as a DataFrame; CreditDataError when it cannot be read."""
    import pandas as pd

    if not path.is_file():
        raise CreditDataError(f"{path} does not exist")
    try:
        frame = pd.read_csv(path, sep=None, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv_error()) as exc:
        raise CreditDataError(f"{path} is not a readable CSV file: {exc}") from None
    if frame.empty or len(frame.columns) < 2:
        raise CreditDataError(f"{path} needs a header row, a target column and at least one more column")
    return frame


def csv_error():  # noqa: ANN201
    import csv

    return csv.Error


def _target(frame, target: str, good: str | None):  # noqa: ANN001, ANN202
    """0/1 labels (1 = bad) and the good value as text."""
    if target not in frame.columns:
        raise CreditDataError(f"target column {target!r} is not in the file; its columns: {', '.join(map(str, frame.columns))}")
    column = frame[target]
    present = column.dropna()
    texts = present.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    values = sorted(set(texts))
    if len(values) < 2:
        raise CreditDataError(f"target column {target!r} has a single class ({values[0] if values else 'empty'}): "
                              "a model needs both good and bad outcomes")
    if len(values) > 2:
        raise CreditDataError(f"target column {target!r} has {len(values)} values ({', '.join(values[:6])}); "
                              "credit scoring needs exactly two (good and bad)")
    if good is None:
        lowered = [v.casefold() for v in values]
        if "good" in lowered:
            good = values[lowered.index("good")]
        elif values == ["0", "1"]:
            good = "0"  # a 0/1 target is a default flag: 1 is the bad outcome
        else:
            raise CreditDataError(f"say which value of {target!r} is the good outcome with --good ({' or '.join(values)})")
    elif good not in values:
        raise CreditDataError(f"--good {good!r} is not a value of {target!r} ({' or '.join(values)})")
    bad = (texts != good).astype(int)
    return bad, good, present.index


def _features(frame, protected: set[str], drop: set[str], actionable: set[str] | None):  # noqa: ANN001, ANN202
    """The usable feature columns, and notes on what was left out and why."""
    import numpy as np
    import pandas as pd

    features: list[Feature] = []
    notes: list[str] = []
    unusable: list[str] = []
    for name in frame.columns:
        if name in drop or name in protected:
            continue
        column = frame[name]
        present = column.dropna()
        if present.empty:
            notes.append(f"{name}: empty, left out")
            continue
        if present.nunique() == 1:
            notes.append(f"{name}: a single value, left out")
            continue
        if not _is_numeric(column):
            as_numbers = pd.to_numeric(present.astype(str).str.replace(",", "", regex=False), errors="coerce")
            if as_numbers.notna().all():
                frame[name] = pd.to_numeric(column.astype(str).str.replace(",", "", regex=False), errors="coerce")
                column, present = frame[name], frame[name].dropna()
        if _is_numeric(column):
            if ID_PATTERN.search(str(name)) and present.nunique() == len(present):
                notes.append(f"{name}: an identifier (every value distinct), left out")
                continue
            values = present.astype(float)
            integer = bool(np.all(np.mod(values, 1) == 0))
            grid = np.unique(np.quantile(values, np.linspace(0, 1, 41)))
            candidates = sorted({int(round(v)) if integer else float(v) for v in grid})
            features.append(Feature(
                name=str(name), kind="numeric", integer=integer,
                q25=float(np.quantile(values, 0.25)), q75=float(np.quantile(values, 0.75)),
                low=float(values.min()), high=float(values.max()), candidates=candidates,
            ))
        else:
            distinct = sorted(present.astype(str).unique())
            if len(distinct) > MAX_CATEGORIES:
                unusable.append(f"{name} ({len(distinct)} distinct texts)")
                continue
            frame[name] = column.map(lambda v: v if pd.isna(v) else str(v))
            features.append(Feature(name=str(name), kind="categorical", values=distinct, candidates=list(distinct)))
    if unusable:
        raise CreditDataError(
            f"unusable columns: {', '.join(unusable)} - identifiers or free text cannot be scored; "
            f"leave them out with --drop {','.join(u.split(' (')[0] for u in unusable)}")
    if not features:
        raise CreditDataError("no usable feature columns are left once the target, protected and dropped columns are out")
    for feature in features:
        if AGE_PATTERN.search(feature.name):
            feature.actionable = False
        elif actionable is not None:
            feature.actionable = feature.name in actionable
    return features, notes


class _Scorecard:
    """optbinning's weight-of-evidence binning + L2 logistic regression."""

    family = "scorecard"

    def __init__(self, features: Sequence[Feature]):
        self.names = [f.name for f in features]
        self.categorical = [f.name for f in features if f.kind == "categorical"]

    def fit(self, X, y):  # noqa: ANN001, ANN201
        from optbinning import BinningProcess
        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.binning = BinningProcess(self.names, categorical_variables=self.categorical,
                                          selection_criteria={"iv": {"min": MIN_IV}})
            woe = self.binning.fit_transform(X[self.names], y)
        self.used = [n for n in self.names if n in set(self.binning.get_support(names=True))]
        self.lr = LogisticRegression(C=SCORECARD_C, max_iter=2000).fit(woe, y)
        return self

    def predict_pd(self, X):  # noqa: ANN001, ANN201
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            woe = self.binning.transform(X[self.names])
        return self.lr.predict_proba(woe)[:, 1]

    def splits(self, name: str) -> list[float]:
        optb = self.binning.get_binned_variable(name)
        return [float(s) for s in optb.splits] if optb.dtype == "numerical" else []


class _MonotoneGBM:
    """LightGBM, monotone in numeric features with a clear direction."""

    family = "gbm"

    def __init__(self, features: Sequence[Feature]):
        self.features = list(features)
        self.names = [f.name for f in features]

    def _frame(self, X):  # noqa: ANN001, ANN202
        import pandas as pd

        out = X[self.names].copy()
        for f in self.features:
            if f.kind == "categorical":
                out[f.name] = pd.Categorical(out[f.name], categories=f.values)
        return out

    def fit(self, X, y):  # noqa: ANN001, ANN201
        import lightgbm as lgb
        from scipy.stats import spearmanr

        frame = self._frame(X)
        monotone = []
        for f in self.features:
            if f.kind == "categorical":
                monotone.append(0)
                continue
            column = frame[f.name]
            mask = column.notna().to_numpy()
            rho = spearmanr(column[mask], y[mask]).statistic if mask.sum() > 2 else 0.0
            monotone.append(int(math.copysign(1, rho)) if abs(rho) > MONOTONE_RHO else 0)
        self.monotone = dict(zip(self.names, monotone))
        self.booster = lgb.LGBMClassifier(monotone_constraints=monotone, n_jobs=2, **GBM_PARAMS).fit(frame, y)
        gains = self.booster.booster_.feature_importance(importance_type="gain")
        self.used = [n for n, g in zip(self.names, gains) if g > 0]
        return self

    def predict_pd(self, X):  # noqa: ANN001, ANN201
        return self.booster.predict_proba(self._frame(X))[:, 1]

    def splits(self, name: str) -> list[float]:
        return []


FAMILIES = {"scorecard": _Scorecard, "gbm": _MonotoneGBM}


@dataclass
class CreditModel:
    version: str
    features: list[Feature]
    estimator: Any
    cutoff_pd: float
    scaling: Scaling
    card: dict[str, Any]

    # -- inputs ----------------------------------------------------------------
    @property
    def used(self) -> list[Feature]:
        """The features the fitted model reads: what an application must give."""
        used = set(self.estimator.used)
        return [f for f in self.features if f.name in used]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def validate(self, applicant: Mapping[str, Any]) -> dict[str, Any]:
        """The applicant's values for the used features, coerced; ValueError naming what is wrong."""
        names = {f.name for f in self.used}
        # Other columns of the training file (protected, left out, unused) may come along
        # with an application; they are ignored, never read.
        unknown = sorted(set(applicant) - set(self.card.get("columns", [f.name for f in self.features])))
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(unknown)}; this model reads: {', '.join(sorted(names))}")
        missing = sorted(names - set(applicant))
        if missing:
            raise ValueError(f"missing fields: {', '.join(missing)}")
        return {f.name: f.coerce(applicant[f.name]) for f in self.used}

    def _rows(self, rows: Sequence[Mapping[str, Any]]):  # noqa: ANN202
        import numpy as np
        import pandas as pd

        frame = pd.DataFrame([{f.name: row.get(f.name, np.nan) for f in self.features} for row in rows])
        for f in self.features:
            if f.kind == "numeric":
                frame[f.name] = frame[f.name].astype(float)
            else:
                frame[f.name] = frame[f.name].astype(object)
        return frame

    def predict_pd(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        return [float(p) for p in self.estimator.predict_pd(self._rows(rows))]

    # -- a decision ------------------------------------------------------------
    def assess(self, applicant: Mapping[str, Any], *, reasons: int = 4) -> Assessment:
        values = self.validate(applicant)
        pd_ = self.predict_pd([values])[0]
        score = self.scaling.points(pd_)
        decision = "approve" if pd_ <= self.cutoff_pd else "decline"
        return Assessment(
            decision=decision,
            probability_of_default=round(pd_, 4),
            score=score,
            cutoff_score=self.scaling.points(self.cutoff_pd),
            reasons=self.reasons(values, pd_)[:reasons],
            counterfactual=self.counterfactual(values) if decision == "decline" else None,
            version=self.version,
        )

    def _candidates(self, f: Feature, current: Any) -> list[Any]:
        values = set(f.candidates)
        if f.kind == "numeric":
            for split in self.estimator.splits(f.name):
                for v in ((math.floor(split), math.ceil(split)) if f.integer else (split * 0.999, split * 1.001)):
                    if f.low <= v <= f.high:
                        values.add(int(v) if f.integer else float(v))
        values.discard(current)
        return sorted(values, key=lambda v: abs(v - current) if f.kind == "numeric" else 0)

    def reasons(self, values: Mapping[str, Any], pd_: float | None = None) -> list[dict[str, Any]]:
        """Features whose best value would raise the score, with the points it would add."""
        base = self.predict_pd([values])[0] if pd_ is None else pd_
        base_points = self.scaling.points(base)
        trials, owners = [], []
        for f in self.used:
            for v in self._candidates(f, values[f.name]):
                trials.append({**values, f.name: v})
                owners.append(f.name)
        best: dict[str, int] = {}
        for owner, p in zip(owners, self.predict_pd(trials) if trials else []):
            best[owner] = max(best.get(owner, base_points), self.scaling.points(p))
        found = [{"feature": name, "value": values[name], "points": gain - base_points}
                 for name, gain in best.items() if gain - base_points > 0]
        return sorted(found, key=lambda r: (-r["points"], r["feature"]))

    def _distance(self, f: Feature, old: Any, new: Any) -> float:
        return abs(new - old) / f.scale() if f.kind == "numeric" else 1.0

    def counterfactual(self, values: Mapping[str, Any], *, pair_features: int = 6, pair_values: int = 10) -> dict[str, Any] | None:
        """The smallest change to actionable features that reaches the cut-off, or None."""
        actionable = [f for f in self.used if f.actionable]
        single, owners = [], []
        for f in actionable:
            for v in self._candidates(f, values[f.name]):
                single.append({**values, f.name: v})
                owners.append((f, v))
        if not single:
            return None
        pds = self.predict_pd(single)
        best: tuple[float, list, float] | None = None
        gain: dict[str, list[tuple[float, Any]]] = {}
        for (f, v), p in zip(owners, pds):
            gain.setdefault(f.name, []).append((p, v))
            if p <= self.cutoff_pd:
                d = self._distance(f, values[f.name], v)
                if best is None or d < best[0]:
                    best = (d, [(f, v)], p)
        if best is None:
            by_feature = {f.name: f for f in actionable}
            ranked = sorted(gain, key=lambda n: min(p for p, _ in gain[n]))[:pair_features]
            trials, combos = [], []
            for a, b in combinations(ranked, 2):
                fa, fb = by_feature[a], by_feature[b]
                va = [v for p, v in sorted(gain[a], key=lambda t: t[0])[:pair_values]]
                vb = [v for p, v in sorted(gain[b], key=lambda t: t[0])[:pair_values]]
                for x in va:
                    for y in vb:
                        trials.append({**values, a: x, b: y})
                        combos.append([(fa, x), (fb, y)])
            for combo, p in zip(combos, self.predict_pd(trials) if trials else []):
                if p <= self.cutoff_pd:
                    d = sum(self._distance(f, values[f.name], v) for f, v in combo)
                    if best is None or d < best[0]:
                        best = (d, combo, p)
        if best is None:
            return None
        _, combo, p = best
        return {
            "changes": [{"feature": f.name, "from": values[f.name], "to": v} for f, v in combo],
            "probability_of_default": round(float(p), 4),
            "score": self.scaling.points(p),
        }


# -- training ---------------------------------------------------------------------
def _ks(y, p) -> float:  # noqa: ANN001
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return float(max(tpr - fpr))


def _calibration(y, p, bins: int = 10) -> dict[str, Any]:  # noqa: ANN001
    import numpy as np
    from sklearn.metrics import brier_score_loss

    order = np.argsort(p)
    table = []
    for chunk in np.array_split(order, bins):
        table.append({"predicted": round(float(p[chunk].mean()), 4), "observed": round(float(y[chunk].mean()), 4),
                      "n": int(len(chunk))})
    ece = sum(abs(r["predicted"] - r["observed"]) * r["n"] for r in table) / len(y)
    return {"brier": round(float(brier_score_loss(y, p)), 4), "expected_calibration_error": round(float(ece), 4),
            "deciles": table}


def _cost_cutoff(y, p, bad_cost: float) -> float:  # noqa: ANN001
    """The PD cut-off with the lowest expected cost: approved bads cost ``bad_cost``, declined goods 1."""
    import numpy as np

    best, best_cost = 0.5, float("inf")
    for cut in np.unique(np.round(p, 3)):
        approve = p <= cut
        cost = bad_cost * np.sum(approve & (y == 1)) + np.sum(~approve & (y == 0))
        if cost < best_cost:
            best, best_cost = float(cut), cost
    return best


def _fairness(frame, protected: Sequence[str], ages: Sequence[str], approve) -> dict[str, Any]:  # noqa: ANN001
    """Approval rates at the cut-off (out-of-fold) per group, and each group's ratio to the highest."""
    import pandas as pd

    report: dict[str, Any] = {}
    columns = [(c, frame[c].astype(str)) for c in protected]
    for c in ages:
        bands = pd.cut(pd.to_numeric(frame[c], errors="coerce"), [0, 25, 40, 60, 200], right=False,
                       labels=["under 25", "25-39", "40-59", "60 and over"])
        columns.append((f"{c} (band)", bands.astype(str)))
    for name, groups in columns:
        rates = {}
        for group, mask in groups.groupby(groups).groups.items():
            if len(mask) >= 20:
                rates[str(group)] = (round(float(approve[frame.index.get_indexer(mask)].mean()), 4), int(len(mask)))
        if len(rates) >= 2:
            top = max(r for r, _ in rates.values()) or 1.0
            report[name] = {g: {"approval_rate": r, "ratio_to_highest": round(r / top, 4), "n": n}
                            for g, (r, n) in sorted(rates.items())}
    return report


def train_model(
    frame,  # noqa: ANN001 - pandas.DataFrame, the raw file
    target: str,
    *,
    good: str | None = None,
    protected: Sequence[str] = (),
    drop: Sequence[str] = (),
    actionable: Sequence[str] | None = None,
    families: Sequence[str] = ("scorecard", "gbm"),
    cutoff_pd: float | None = None,
    bad_cost: float = 5.0,
    scaling: Scaling = Scaling(),
    data_hash: str = "",
    source: str = "",
    questions: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> CreditModel:
    """Cross-validate the model families on ``frame``, fit the better one on all rows."""
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    frame = frame.copy()
    columns = set(map(str, frame.columns))
    for option, names in (("--protected", protected), ("--drop", drop), ("--actionable", actionable or ())):
        missing = sorted(set(names) - columns)
        if missing:
            raise CreditDataError(f"{option}: no column {', '.join(map(repr, missing))} in the file")
    if cutoff_pd is not None and not 0 < cutoff_pd < 1:
        raise CreditDataError("the cut-off is a probability of default between 0 and 1")
    y_all, good, kept = _target(frame, target, good)
    dropped_rows = len(frame) - len(kept)
    frame = frame.loc[kept].drop(columns=[target]).reset_index(drop=True)
    y = y_all.to_numpy()
    detected = sorted(c for c in map(str, frame.columns) if PROTECTED_PATTERN.search(c))
    protected_all = sorted(set(protected) | set(detected))
    if min(np.bincount(y, minlength=2)) < 2 * FOLDS:
        raise CreditDataError(f"too few {'bad' if y.sum() < len(y) / 2 else 'good'} outcomes "
                              f"({min(np.bincount(y, minlength=2))}) for {FOLDS}-fold cross-validation; "
                              f"at least {2 * FOLDS} of each are needed")
    features, notes = _features(frame, set(protected_all), set(drop), set(actionable) if actionable is not None else None)
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(frame, y))
    results: dict[str, dict[str, Any]] = {}
    for family in families:
        if progress:
            progress(f"cross-validating {family} ({FOLDS} folds)...")
        oof = np.zeros(len(y))
        t0 = time.perf_counter()
        for train_idx, test_idx in folds:
            est = FAMILIES[family](features).fit(frame.iloc[train_idx], y[train_idx])
            oof[test_idx] = est.predict_pd(frame.iloc[test_idx])
        results[family] = {"cv_auc": round(float(roc_auc_score(y, oof)), 4), "cv_ks": round(_ks(y, oof), 4),
                           "calibration": _calibration(y, oof), "seconds": round(time.perf_counter() - t0, 2),
                           "_oof": oof}
    chosen = max(results, key=lambda f: results[f]["cv_auc"])
    if progress:
        progress(f"fitting {chosen} on all {len(y)} rows...")
    estimator = FAMILIES[chosen](features).fit(frame, y)
    oof = results[chosen]["_oof"]
    cutoff = float(cutoff_pd) if cutoff_pd is not None else _cost_cutoff(y, oof, bad_cost)
    ages = [f.name for f in features if AGE_PATTERN.search(f.name)]
    fairness = _fairness(frame, protected_all, ages, oof <= cutoff)
    now = datetime.now(timezone.utc)
    version = f"credit-{now.strftime('%Y%m%d-%H%M%S')}-{data_hash[:8] or 'data'}"
    used = set(estimator.used)
    card = {
        "version": version,
        "created": now.isoformat(timespec="seconds"),
        "source": source,
        "data_sha256": data_hash,
        "rows": int(len(y)),
        "rows_without_target": int(dropped_rows),
        "bad_rate": round(float(y.mean()), 4),
        "target": target,
        "columns": [c for c in map(str, frame.columns)],
        "good_value": good,
        "family": chosen,
        "features": [{"name": f.name, "kind": f.kind, "used": f.name in used, "actionable": f.actionable,
                      **({"values": f.values} if f.kind == "categorical" else {"min": f.low, "max": f.high})}
                     for f in features],
        "monotone": getattr(estimator, "monotone", None),
        "protected": protected_all,
        "left_out": notes,
        "metrics": {"cv_auc": results[chosen]["cv_auc"], "cv_ks": results[chosen]["cv_ks"],
                    "calibration": results[chosen]["calibration"],
                    "candidates": {f: {k: v for k, v in r.items() if k in ("cv_auc", "cv_ks", "seconds")}
                                   for f, r in results.items()},
                    "folds": FOLDS, "seed": seed},
        "cutoff_pd": round(cutoff, 4),
        "cutoff_rule": "given" if cutoff_pd is not None else f"lowest expected cost, bad:good cost {bad_cost:g}:1",
        "cv_approval_rate": round(float((oof <= cutoff).mean()), 4),
        "scaling": asdict(scaling),
        "cutoff_score": scaling.points(cutoff),
        "fairness": fairness,
        "questions": dict(questions or {}),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return CreditModel(version, features, estimator, cutoff, scaling, card)



# -- the tenant's registry -----------------------------------------------------------
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


class Registry:
    """A tenant's models: ``<tenant dir>/models/<version>/{model.pkl,card.json}`` and
    ``active.json`` naming the one in use. Writes are atomic (a folder renamed into
    place, a file replaced), so a failed save leaves nothing behind."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.models = folder / "models"
        self._cache: tuple[float, CreditModel] | None = None

    def save(self, model: CreditModel, *, activate: bool = True) -> Path:
        if not VERSION_PATTERN.match(model.version):
            raise CreditDataError(f"model name {model.version!r}: use letters, digits, '.', '_' and '-'")
        target = self.models / model.version
        if target.exists():
            raise CreditDataError(f"a model named {model.version!r} already exists for this tenant")
        self.models.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=self.models))
        try:
            with (staging / "model.pkl").open("wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            (staging / "card.json").write_text(json.dumps(model.card, indent=2, default=str), encoding="utf-8")
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if activate:
            self.activate(model.version)
        return target

    def cards(self) -> list[dict[str, Any]]:
        if not self.models.is_dir():
            return []
        cards = []
        for folder in sorted(self.models.iterdir()):
            card_file = folder / "card.json"
            if folder.name.startswith(".") or not card_file.is_file():
                continue
            cards.append(json.loads(card_file.read_text(encoding="utf-8")))
        return sorted(cards, key=lambda c: c.get("created", ""))

    def active_version(self) -> str | None:
        pointer = self.folder / "active.json"
        if not pointer.is_file():
            return None
        return json.loads(pointer.read_text(encoding="utf-8")).get("version")

    def activate(self, version: str) -> None:
        if not VERSION_PATTERN.match(version) or not (self.models / version / "model.pkl").is_file():
            known = ", ".join(c["version"] for c in self.cards()) or "none"
            raise CreditDataError(f"no model {version!r} for this tenant; its models: {known}")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".active-", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": version, "activated": datetime.now(timezone.utc).isoformat(timespec="seconds")}, fh)
        os.replace(tmp, self.folder / "active.json")

    def active(self) -> CreditModel | None:
        """The active model (loaded once, reloaded when another is activated)."""
        pointer = self.folder / "active.json"
        try:
            stamp = pointer.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        return self._load(stamp)

    def load(self, version: str) -> CreditModel:
        path = self.models / version / "model.pkl"
        if not VERSION_PATTERN.match(version) or not path.is_file():
            raise CreditDataError(f"no model {version!r} for this tenant")
        with path.open("rb") as fh:
            return pickle.load(fh)

    def _load(self, stamp: float) -> CreditModel | None:
        version = self.active_version()
        if version is None:
            return None
        model = self.load(version)
        self._cache = (stamp, model)
        return model


def describe(card: Mapping[str, Any]) -> str:
    """One line for ``lepton credit list``."""
    m = card.get("metrics", {})
    return (f"{card['version']}  {card['family']}  cv_auc {m.get('cv_auc')}  ks {m.get('cv_ks')}  "
            f"{card['rows']} rows  cut-off PD {card['cutoff_pd']} ({card['cutoff_score']} points)")

