"""Choose the safety classifier's threshold by cross-validation on its examples.

    python benchmarks/tune_safety.py [--examples assistant/data/safety_examples.jsonl] [--folds 5]
        [--customer customer_messages.jsonl]

For each threshold, 5-fold stratified cross-validation of the whole guard (the
rules, then the classifier trained on the other folds) on the examples: recall of
crisis and emergency messages (at any level) and the share of other messages
answered (false alarms). The embeddings are the server's: the router's int8
encoder. ``--customer`` also counts, per threshold, the messages of that file
(ordinary customer messages, all ``none``) that the guard trained on all the
examples answers. The chosen threshold (``assistant.safety.CLASSIFIER_THRESHOLD``)
is the lowest that answers under 0.05 % of the customer messages and whose
cross-validated false-alarm rate on the examples' deliberately hard ``none``
messages (figurative language, ordinary symptoms) stays under 10 %: a crisis reply
to a figurative message costs a moment's confusion, a missed crisis far more.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def main() -> None:
    from sklearn.model_selection import StratifiedKFold

    from assistant.safety import EXAMPLES_PATH, check, classify, fit_classifier, read_examples
    from retrieval.query_encoder import load_query_encoder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=Path, default=EXAMPLES_PATH)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--customer", type=Path, help="JSONL of ordinary customer messages (all none).")
    args = parser.parse_args()

    rows = read_examples(args.examples)
    encoder = load_query_encoder(None, int8=True)
    vectors = encoder.encode([r["text"] for r in rows], normalize_embeddings=True)
    labels = [r["label"] for r in rows]
    ruled = [check(r["text"]) is not None for r in rows]
    splits = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0).split(vectors, labels)
    predicted = {t: [None] * len(rows) for t in THRESHOLDS}
    for train, held in splits:
        model = fit_classifier(vectors[train], [labels[i] for i in train])
        for t in THRESHOLDS:
            for i in held:
                predicted[t][i] = True if ruled[i] else classify(model, vectors[i], t) is not None
    urgent = [i for i, label in enumerate(labels) if label != "none"]
    quiet = [i for i, label in enumerate(labels) if label == "none"]
    rules_recall = sum(ruled[i] for i in urgent) / len(urgent)
    rules_alarms = sum(ruled[i] for i in quiet) / len(quiet)
    print(f"{len(rows)} examples ({len(urgent)} crisis or emergency, {len(quiet)} other), {args.folds}-fold CV")
    print(f"rules alone:      recall {rules_recall:.3f}  false alarms {rules_alarms:.3f}")
    for t in THRESHOLDS:
        recall = sum(predicted[t][i] for i in urgent) / len(urgent)
        alarms = sum(predicted[t][i] for i in quiet) / len(quiet)
        print(f"threshold {t:.2f}:   recall {recall:.3f}  false alarms {alarms:.3f}")
    if args.customer:
        customer = [r["text"] for r in read_examples(args.customer)]
        customer_vectors = encoder.encode(customer, normalize_embeddings=True, batch_size=128)
        customer_ruled = [check(text) is not None for text in customer]
        model = fit_classifier(vectors, labels)
        print(f"{len(customer)} customer messages; answered by the rules: {sum(customer_ruled)}")
        for t in THRESHOLDS:
            answered = sum(ruled or classify(model, vector, t) is not None
                           for ruled, vector in zip(customer_ruled, customer_vectors))
            print(f"threshold {t:.2f}:   customer messages answered {answered} ({answered / len(customer):.2%})")


if __name__ == "__main__":
    main()
