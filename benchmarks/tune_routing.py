"""Choose the routing-in-context thresholds on development data only.

Grids ``switch`` and ``leave`` (``router.ContextPolicy``) on development dialogues,
and ``knowledge`` on the development half of the WixQA questions (help-centre
questions: should reach customer_service) together with the development routing
set (single messages of every skill and out of scope: should not be pulled to
customer_service). Router scores and knowledge similarities are computed once;
each grid point then replays ``route_in_context`` exactly as the server runs it.

Example (data files from benchmarks/README.md, Routing in context):
    python benchmarks/tune_routing.py --dialogues benchmarks/data/dialogues_dev.jsonl \\
        --messages /tmp/routing_dev.jsonl --wixqa /tmp/wixqa_dev.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant import Settings  # noqa: E402
from assistant.knowledge import Knowledge  # noqa: E402
from assistant.router import OUT_OF_SCOPE, ContextPolicy, EmbeddingRouter, route_in_context  # noqa: E402
from assistant.routing_eval import read_dialogues  # noqa: E402
from retrieval.query_encoder import load_query_encoder  # noqa: E402
from skills import load_skills  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=Path, required=True)
    parser.add_argument("--messages", type=Path, required=True, help="single labelled messages (dev split)")
    parser.add_argument("--wixqa", type=Path, required=True, help="help-centre questions (dev half)")
    parser.add_argument("--show-errors", action="store_true", help="print the dialogue turns routed wrong at the best point")
    args = parser.parse_args()

    settings = Settings()
    loaded = load_skills(settings.skills)
    router = EmbeddingRouter(load_query_encoder(settings.embedding_model, int8=settings.router_int8),
                             {n: s.examples for n, s in loaded.skills.items()}, threshold=settings.router_threshold)
    owners = {n: s.collection for n, s in loaded.skills.items() if s.collection}
    knowledge = Knowledge(settings)
    knowledge.ensure_demo(settings.default_tenant, progress=None)

    sets = {name: read_dialogues(path) for name, path in
            [("dialogues", args.dialogues), ("messages", args.messages), ("wixqa", args.wixqa)]}
    texts = sorted({t["text"] for d in itertools.chain(*sets.values()) for t in d})
    vectors = dict(zip(texts, router.embed(texts)))
    routes = {text: router.route(text, vectors[text]) for text in texts}
    collection = next(iter(owners.values()))
    # As the server asks: a dense search with the message's router embedding.
    similarity = {text: knowledge.best_match(settings.default_tenant, collection, text, vectors[text])
                  for text in texts}

    def run(dialogues, policy):  # noqa: ANN001, ANN202
        out = []
        for dialogue in dialogues:
            current = None
            for i, turn in enumerate(dialogue):
                decision = route_in_context(routes[turn["text"]], turn["text"], current=current, policy=policy,
                                            owners=owners, knowledge=lambda s, c, m: similarity[m])
                current = decision.skill if decision.skill in loaded.skills else None
                out.append((turn, i, decision.skill))
        return out

    def accuracy(rows) -> float:  # noqa: ANN001
        return sum(t["skill"] == p for t, _, p in rows) / len(rows)

    base = ContextPolicy()
    print("knowledge threshold: wixqa dev recall / single-message dev accuracy")
    no_knowledge = accuracy(run(sets["messages"], ContextPolicy(knowledge=1.01)))
    print(f"  without knowledge: wixqa {accuracy(run(sets['wixqa'], ContextPolicy(knowledge=1.01))):.3f}"
          f"  messages {no_knowledge:.3f}")
    for k in [0.35, 0.4, 0.45, 0.5, 0.55, 0.6]:
        policy = ContextPolicy(switch=base.switch, leave=base.leave, knowledge=k)
        print(f"  {k:.2f}: wixqa {accuracy(run(sets['wixqa'], policy)):.3f}"
              f"  messages {accuracy(run(sets['messages'], policy)):.3f}")
    print("switch, leave: dialogue turn accuracy (follow-ups)")
    results = []
    for short, switch, leave in itertools.product([0, 2, 3, 4], [0.55, 0.6, 0.7, 0.8, 0.9],
                                                  [0.6, 0.7, 0.8, 0.9, 0.95, 1.01]):
        rows = run(sets["dialogues"], ContextPolicy(switch=switch, leave=leave, knowledge=base.knowledge,
                                                    short_reply=short))
        follow = [r for r in rows if r[1] > 0]
        results.append((accuracy(rows), accuracy(follow), -leave, switch, short))
        print(f"  short reply {short} switch {switch:.2f} leave {leave:.2f}: {accuracy(rows):.3f} ({accuracy(follow):.3f})")
    # Best accuracy; among equals, the lowest leave threshold (out of scope stays reachable).
    best = max(results)
    accuracy_, followup, leave, switch, short = best
    print(json.dumps({"best": {"accuracy": accuracy_, "followup": followup, "switch": switch, "leave": -leave,
                               "short_reply": short}}))
    if args.show_errors:
        chosen = ContextPolicy(switch=switch, leave=-leave, knowledge=base.knowledge, short_reply=short)
        for turn, i, p in run(sets["dialogues"], chosen):
            if turn["skill"] != p:
                scores = routes[turn["text"]].scores
                top = sorted(scores.items(), key=lambda kv: -kv[1])[:2]
                print(f"  turn {i}: {turn['text']!r} gold {turn['skill']} got {p}  "
                      + " ".join(f"{k}={v:.2f}" for k, v in top) + f" kb={similarity[turn['text']]:.2f}")


if __name__ == "__main__":
    main()
