"""Does the model's optional explanation of a credit decision stay with the computed reasons?

    python benchmarks/eval_credit_explanations.py --german PATH/germancredit.csv [--applicants 30] [--json]

The demo credit model is trained on the German file; a real server runs the real
assistant with the embedded model and the skill option ``explain_with_model`` on.
For each of the file's first N applicants, a whole application goes through the
API with the official openai client (each answer is the number of the applicant's
choice, or the number itself), then "yes". The text after the fixed decision is
the model's explanation. It is counted as

- **inventing** when it names a factor the decision did not list: a word of
  another field's label, or a factor the model never reads (income, salary, debt,
  interest, ...);
- **degenerate** by eval_degenerate's rule (a repeated sentence, or under 80 %
  distinct trigrams);
- **naming a reason** when it uses a word of at least one computed reason's label;
- **promising** when it says the applicant is or will be approved against a
  decline, or speaks of a guarantee.

The fixed text alone (the default) has none of these by construction; this
measures what turning the option on would add with the embedded model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_turn_overhead import serve  # noqa: E402 - a sibling script
from eval_degenerate import degenerate  # noqa: E402

NEVER_READ = ("income", "salary", "earn", "debt", "interest", "bankrupt", "mortgage", "credit score", "credit card",
              "payslip", "collateral")
GENERIC = {"your", "the", "with", "from", "current", "time", "other", "plans", "period"}


def words_of(label: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", label.lower()) if len(w) > 3 and w not in GENERIC}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--german", type=Path, required=True)
    parser.add_argument("--applicants", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import openai

    from assistant import Assistant, Settings
    from skills.credit_scoring import DEMO_VERSION
    from skills.credit_scoring.form import build_fields
    from skills.credit_scoring.model import Registry, read_table

    data = tempfile.mkdtemp(prefix="lepton-credit-explain-")
    settings = Settings(data_dir=data, demo_knowledge=False,
                        skill_options={"credit_scoring": {"explain_with_model": True}})
    assistant = Assistant.from_settings(settings, progress=lambda m: None)
    env = assistant.envs["credit_scoring"]
    assistant.skills["credit_scoring"].prepare_demo(env)
    model = Registry(env.tenant_dir(env.default_tenant)).load(DEMO_VERSION)
    fields = {f.name: f for f in build_fields(model.used, model.card["questions"])}
    server, base = serve(settings, assistant)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
    rows = read_table(args.german).drop(columns=["creditability"]).head(args.applicants).to_dict("records")
    results = []
    for row in rows:
        history = [{"role": "user", "content": "I'd like to apply for a loan"}]
        lepton: dict = {}
        for _ in range(len(fields) + 2):
            answer = client.chat.completions.create(model="credit_scoring", messages=history)
            lepton = answer.model_extra["lepton"]
            history.append({"role": "assistant", "content": answer.choices[0].message.content})
            asking = lepton.get("credit_asking")
            if lepton.get("credit_stage") != "collecting" or asking is None:
                break
            f = fields[asking]
            value = row[asking]
            reply = str(list(f.choices).index(value) + 1) if f.kind == "categorical" else str(value)
            history.append({"role": "user", "content": reply})
        history.append({"role": "user", "content": "yes"})
        final = client.chat.completions.create(model="credit_scoring", messages=history)
        lepton = final.model_extra["lepton"]
        text = final.choices[0].message.content
        fixed_end = text.rfind("talk it through?") if lepton["credit_decision"] == "decline" else text.rfind("final terms.")
        explanation = text[fixed_end:].split("\n\n", 1)[-1].strip() if fixed_end >= 0 else ""
        reasons = {r["feature"] for r in lepton["credit_reasons"]}
        allowed = set().union(*(words_of(fields[n].label) for n in reasons)) if reasons else set()
        banned = set().union(*(words_of(f.label) for n, f in fields.items() if n not in reasons)) - allowed
        low = explanation.lower()
        invented = sorted({w for w in banned | set(NEVER_READ) if re.search(rf"\b{w}", low)})
        named = sorted(w for w in allowed if re.search(rf"\b{w}", low))
        promising = bool(re.search(r"\bguarantee", low)) or (
            lepton["credit_decision"] == "decline" and bool(re.search(r"\b(you are|you're|will be) approved\b", low)))
        results.append({"decision": lepton["credit_decision"], "explanation": explanation, "invented": invented, "named": named,
                        "degenerate": degenerate(explanation), "promising": promising})
    server.should_exit = True
    n = len(results)
    report = {
        "applicants": n,
        "with_explanation": sum(bool(r["explanation"]) for r in results),
        "inventing": sum(bool(r["invented"]) for r in results),
        "naming_a_computed_reason": sum(bool(r["named"]) for r in results),
        "degenerate": sum(r["degenerate"] for r in results),
        "promising": sum(r["promising"] for r in results),
        "examples": [{k: r[k] for k in ("decision", "explanation", "invented")} for r in results[:5]],
    }
    assistant.close()
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{n} applicants: explanation naming a computed reason {report['naming_a_computed_reason']}, "
              f"inventing a factor {report['inventing']}, degenerate "
              f"{report['degenerate']}, promising {report['promising']}")
        for r in report["examples"]:
            print(f"- {r['decision']}: {r['explanation'][:200]!r} invented={r['invented']}")


if __name__ == "__main__":
    main()
