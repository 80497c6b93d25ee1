"""Feedback stored by the server becomes training rows that `prepare` accepts."""

from __future__ import annotations

import json

import pytest

from assistant.cli import main
from assistant.llm import GenerationParams
from skills.customer_service import SYSTEM_PROMPT as CS_PROMPT

pytestmark = pytest.mark.slow

PARAMS = GenerationParams(max_tokens=6)


def say(assistant, text, conversation=None, model="customer_service"):
    return assistant.run_turn(assistant.start_turn([{"role": "user", "content": text}], model=model,
                                                   conversation_id=conversation, params=PARAMS))


def test_export_feedback_to_prepare(settings, assistant, tmp_path, capsys):
    first = say(assistant, "Where is my parcel?")
    second = say(assistant, "It was due on Monday.", first.conversation_id)
    other = say(assistant, "I have had a headache for two days", model="medical_triage")
    third = say(assistant, "Can I change my delivery address?")
    conv = first.conversation_id
    history = assistant.history("default", conv)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    store = assistant.store
    store.add_feedback("default", conv, 1, +1, None)                      # thumbs up: the answer is the target
    # The correction is the target; a card number in a row stored before masking is masked on export.
    store.add_feedback("default", conv, 3, -1, "It left our depot today. Card 4111 1111 1111 1111.")
    store.add_feedback("default", third.conversation_id, 1, -1, None)     # nothing to learn: skipped
    store.add_feedback("default", other.conversation_id, 1, +1, None)     # another skill's answer
    store.add_feedback("acme", conv, 1, +1, None)                         # another tenant
    assistant.close()

    out = tmp_path / "feedback.jsonl"
    main(["--data-dir", str(settings.data_dir), "finetune", "export-feedback", "--skill", "customer_service",
          "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["rows"] == 2 and report["feedback"] == 4
    assert (report["thumbs_up"], report["corrections"]) == (1, 1)
    assert report["skipped_thumbs_down_without_correction"] == 1 and report["other_skills"] == 1

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # No help centre here: the skill answered from its own system prompt, which leads each row.
    assert report["with_prompt"] == 2
    system = {"role": "system", "content": CS_PROMPT}
    assert rows[0]["messages"] == [system, {"role": "user", "content": "Where is my parcel?"},
                                   {"role": "assistant", "content": first.reply}]
    assert rows[1]["messages"] == [
        system,
        {"role": "user", "content": "Where is my parcel?"},
        {"role": "assistant", "content": first.reply, "weight": 0},
        {"role": "user", "content": "It was due on Monday."},
        {"role": "assistant", "content": "It left our depot today. Card [card number removed]."},
    ]
    assert second.reply == history[3]["content"]

    main(["finetune", "prepare", str(out), "--out", str(tmp_path / "prepared"), "--eval-size", "1", "--json"])
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (stats["format"], stats["train_rows"], stats["eval_rows"], stats["invalid"]) == ("openai", 1, 1, 0)

    # acme's row points at a conversation acme does not own: its thread is never read.
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(settings.data_dir), "finetune", "export-feedback", "--skill", "customer_service",
              "--tenant", "acme", "--out", str(tmp_path / "acme.jsonl")])
    assert exc.value.code == 1
    assert "no usable feedback for skill 'customer_service' of tenant 'acme'" in capsys.readouterr().err
    assert not (tmp_path / "acme.jsonl").exists()


def test_exported_rows_start_with_the_prompt_the_model_answered_from(settings, assistant, tmp_path, capsys):
    from skills.customer_service import SYSTEM_PROMPT

    turn = say(assistant, "How do I change my delivery address?", model="customer_service")
    assistant.store.add_feedback("default", turn.conversation_id, 1, +1, None)
    assistant.close()

    out = tmp_path / "feedback.jsonl"
    main(["--data-dir", str(settings.data_dir), "finetune", "export-feedback", "--skill", "customer_service",
          "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["rows"], report["with_prompt"]) == (1, 1)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "How do I change my delivery address?"},
        {"role": "assistant", "content": turn.reply},
    ]
