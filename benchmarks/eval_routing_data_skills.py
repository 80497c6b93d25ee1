"""Routing with and without a tenant's data skills, in one run.

    python benchmarks/eval_routing_data_skills.py [--skills benchmarks/data/data_skills]
                                                  [--sets FILE ...] [--json]

In a new data directory, the existing routing sets (single messages and
dialogues, labelled with the built-in skills) are routed for the default tenant
as `lepton eval routing` routes them (the demo help centre loaded, context and
knowledge on). Then the data skills in ``--skills`` (``skills.json``: name →
description; a folder per skill with ``examples.txt`` and its documents) are
created for that tenant exactly as ``lepton skills create`` makes them, and the
same sets are routed again, with the held-out messages written for the data
skills (``heldout.jsonl``, never their routing examples). Accuracy must not
drop on the existing sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.routing_eval import evaluate_routing, read_dialogues  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.store import open_store  # noqa: E402
from assistant.tenant_skills import create_data_skill  # noqa: E402
from skills import installed_names  # noqa: E402
from skills.data_skill import read_examples  # noqa: E402

SETS = ["routing_handwritten.jsonl", "dialogues_test.jsonl", "dialogues_holdout.jsonl", "dialogues_holdout2.jsonl"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills", type=Path, default=ROOT / "benchmarks" / "data" / "data_skills")
    parser.add_argument("--sets", type=Path, nargs="+", default=[ROOT / "benchmarks" / "data" / s for s in SETS])
    parser.add_argument("--json", action="store_true", help="Last line: one JSON object")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="lepton-routing-data-skills-")
    settings = Settings(data_dir=Path(tmp.name) / "data")
    sets = {path.name: read_dialogues(path) for path in args.sets}
    result: dict = {"before": {}, "after": {}}
    for name, dialogues in sets.items():
        result["before"][name] = evaluate_routing(settings, dialogues)["accuracy"]

    store = open_store(settings)
    installed = installed_names()
    for skill, description in json.loads((args.skills / "skills.json").read_text()).items():
        folder = args.skills / skill
        documents = [p for p in sorted(folder.iterdir()) if p.name != "examples.txt"]
        create_data_skill(settings, store, settings.default_tenant, skill, description=description,
                          examples=read_examples(folder / "examples.txt"), knowledge=documents, installed=installed)
    for name, dialogues in sets.items():
        result["after"][name] = evaluate_routing(settings, dialogues)["accuracy"]
    heldout = evaluate_routing(settings, read_dialogues(args.skills / "heldout.jsonl"))
    result["data_skills"] = heldout["data_skills"]
    result["data_skills_heldout"] = {"n": heldout["n"], "accuracy": heldout["accuracy"],
                                     "errors": heldout["errors"]}

    print(f"{'set':<28}{'before':>8}{'after':>8}")
    for name in sets:
        print(f"{name:<28}{result['before'][name]:>8.3f}{result['after'][name]:>8.3f}")
    print(f"data skills' held-out messages ({heldout['n']}): {heldout['accuracy']:.3f}  errors: {heldout['errors']}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
