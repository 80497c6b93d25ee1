"""Dataset preparation: formats, row problems by line, PII scrubbing, dedupe, split, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.data import Columns, prepare, read_prepared, read_rows
from finetune.errors import DatasetError
from finetune.pii import iban_ok, scrub


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def chat(q: str, a: str, system: str | None = None) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- formats -------------------------------------------------------------------------


def test_openai_jsonl_reports_bad_rows_by_line(tmp_path):
    src = write(tmp_path / "d.jsonl", jsonl(chat("hi", "hello"))
                + "{not json\n"
                + "\n"
                + jsonl({"messages": [{"role": "user", "content": "only a question"}]},
                        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
                        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]},
                        chat("second", "fine")))
    read = read_rows(src)
    assert read.format == "openai"
    assert [r.line for r in read.rows] == [1, 7]
    problems = {p.line: p.reason for p in read.problems}
    assert set(problems) == {2, 4, 5, 6}
    assert "not valid JSON" in problems[2]
    assert "no assistant turn" in problems[4]
    assert "role 'robot'" in problems[5]
    assert "has no text" in problems[6]


def test_sharegpt_json_array_line_numbers(tmp_path):
    src = write(tmp_path / "s.json", """[
  {"conversations": [{"from": "human", "value": "Where is my card?"},
                     {"from": "gpt", "value": "It ships in 3 days."}]},
  {"conversations": [{"from": "alien", "value": "??"}]},
  {"system": "Be brief.", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
]""")
    read = read_rows(src)
    assert read.format == "sharegpt"
    assert [r.line for r in read.rows] == [2, 5]
    assert read.rows[1].messages[0] == {"role": "system", "content": "Be brief."}
    assert read.problems[0].line == 4 and "alien" in read.problems[0].reason


def test_alpaca_jsonl_joins_instruction_and_input(tmp_path):
    src = write(tmp_path / "a.jsonl", jsonl(
        {"instruction": "Classify", "input": "I lost my card", "output": "lost_or_stolen_card"},
        {"instruction": "Say hi", "output": ""}))
    read = read_rows(src)
    assert read.format == "alpaca"
    assert read.rows[0].messages == [{"role": "user", "content": "Classify\n\nI lost my card"},
                                     {"role": "assistant", "content": "lost_or_stolen_card"}]
    assert read.problems[0].line == 2


@pytest.mark.parametrize("header", ["question,answer", "text,label", "Text,Label"])
def test_csv_column_pairs(tmp_path, header):
    src = write(tmp_path / "d.csv", f'{header}\n"Where, exactly, is my card?",card_arrival\nonly one cell\n,empty\n')
    read = read_rows(src)
    assert read.format == "csv"
    assert read.rows[0].messages[0]["content"] == "Where, exactly, is my card?"
    assert [(p.line, "columns" in p.reason or "no text" in p.reason) for p in read.problems] == [(3, True), (4, True)]


def test_named_csv_columns_take_any_header(tmp_path):
    # A Bitext-style export: the prompt and answer are two of several columns.
    src = write(tmp_path / "support.csv", "flags,instruction,category,intent,response,persona\n"
                "B,Where is my order?,ORDER,track_order,Your order ships today.,Be brief.\n"
                "B,Cancel it please,ORDER,cancel_order,,\n")
    read = read_rows(src, columns=Columns("Instruction", "response", system="persona"))
    assert read.format == "csv"
    assert read.rows[0].messages == [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Where is my order?"},
                                     {"role": "assistant", "content": "Your order ships today."}]
    assert [(p.line, "no text" in p.reason) for p in read.problems] == [(3, True)]


def test_named_json_fields(tmp_path):
    src = write(tmp_path / "tickets.jsonl", jsonl(
        {"ticket": "My card is blocked", "reply": "We have unblocked it.", "n": 1},
        {"ticket": "Hello?", "reply": 5},
        {"reply": "orphan"}))
    read = read_rows(src, columns=Columns("ticket", "reply"))
    assert read.format == "fields"
    assert read.rows[0].messages == [{"role": "user", "content": "My card is blocked"},
                                     {"role": "assistant", "content": "We have unblocked it."}]
    assert {p.line: p.reason for p in read.problems} == {2: "field 'reply' is not text", 3: "no field 'ticket'"}


def test_prepare_records_the_columns(tmp_path):
    src = write(tmp_path / "b.csv", "text,category\n" + "".join(f"q{i},c{i}\n" for i in range(6)))
    stats = prepare(src, tmp_path / "out", eval_size=1, columns=Columns("category", "text"))
    assert stats["columns"] == {"prompt": "category", "answer": "text", "system": None}
    pairs = [[m["content"] for m in row["messages"]] for row in lines(tmp_path / "out" / "train.jsonl")]
    assert len(pairs) == 5 and all(user == "c" + answer[1:] for user, answer in pairs)


# -- PII ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kind", [
    ("write to jane.roe+bank@mail.example.co.uk", "email"),
    ("my IBAN is GB82 WEST 1234 5698 7654 32", "iban"),
    ("card 4111 1111 1111 1111 was charged", "card"),
    ("card 5500-0000-0000-0004", "card"),
    ("SSN 123-45-6789", "national_id"),
    ("NI number AB 12 34 56 C", "national_id"),
    ("ring me on +44 20 7946 0958", "phone"),
    ("or (555) 123-4567 after six", "phone"),
])
def test_scrub_finds_each_kind(text, kind):
    from collections import Counter

    counts = Counter()
    out = scrub(text, counts)
    assert counts == {kind: 1}
    assert f"[{kind.upper()}]" in out


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 fails Luhn",
    "paid 1250.75 on 2024-03-01 for order 48213377",
    "top up 20 pounds, reference 123456",
])
def test_scrub_leaves_lookalikes(text):
    assert scrub(text) == text


def test_iban_checksum():
    assert iban_ok("DE89 3704 0044 0532 0130 00")
    assert not iban_ok("DE89 3704 0044 0532 0130 01")


# -- prepare -----------------------------------------------------------------------------


def test_prepare_scrubs_dedupes_splits_and_reports(tmp_path):
    rows = [chat(f"question number {i}", f"answer {i % 3}") for i in range(40)]
    rows.append(chat("QUESTION   number 1", "answer 1"))  # duplicate after normalisation
    rows.append(chat("my card 4111 1111 1111 1111 and a@b.example", "noted, call +1 415 555 2671"))
    src = write(tmp_path / "d.jsonl", jsonl(*rows) + '{"messages": []}\n')
    stats = prepare(src, tmp_path / "out", eval_fraction=0.25, seed=3)
    assert stats["records"] == 43 and stats["valid"] == 42 and stats["invalid"] == 1
    assert stats["problems"] == [{"line": 43, "reason": "no messages"}]
    assert stats["duplicates"] == 1
    assert stats["pii"] == {"email": 1, "iban": 0, "card": 1, "national_id": 0, "phone": 1}
    assert (stats["train_rows"], stats["eval_rows"]) == (31, 10)
    train, evals = lines(tmp_path / "out" / "train.jsonl"), lines(tmp_path / "out" / "eval.jsonl")
    assert len(train) == 31 and len(evals) == 10
    everything = json.dumps(train + evals)
    assert "4111" not in everything and "a@b.example" not in everything and "[CARD]" in everything
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["dataset_hash"] == stats["dataset_hash"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_split_is_deterministic_and_stable(tmp_path):
    rows = [chat(f"q{i}", f"a{i}") for i in range(50)]
    a = prepare(write(tmp_path / "a.jsonl", jsonl(*rows)), tmp_path / "A", eval_size=10, seed=7)
    b = prepare(write(tmp_path / "b.jsonl", jsonl(*reversed(rows))), tmp_path / "B", eval_size=10, seed=7)
    c = prepare(tmp_path / "a.jsonl", tmp_path / "C", eval_size=10, seed=8)
    ev = lambda d: sorted(json.dumps(r) for r in lines(tmp_path / d / "eval.jsonl"))  # noqa: E731
    assert ev("A") == ev("B")  # the same rows are held out whatever the file order
    assert ev("A") != ev("C")  # and the seed chooses them
    assert a["eval_rows"] == b["eval_rows"] == c["eval_rows"] == 10


def test_system_prompt_added_where_missing(tmp_path):
    src = write(tmp_path / "d.jsonl", jsonl(chat("q1", "a1"), chat("q2", "a2", system="Own system."), chat("q3", "a3")))
    prepare(src, tmp_path / "out", eval_size=1, system="Banking intent.")
    rows = read_prepared(tmp_path / "out", "train") + read_prepared(tmp_path / "out", "eval")
    assert sorted(r[0]["content"] for r in rows) == ["Banking intent.", "Banking intent.", "Own system."]


def test_strict_fails_on_first_bad_row_and_writes_nothing(tmp_path):
    src = write(tmp_path / "d.jsonl", jsonl(chat("q", "a"), {"messages": [{"role": "user", "content": "x"}]}, {}))
    with pytest.raises(DatasetError, match=r"line 2: no assistant turn .*and 1 more invalid rows.*--strict"):
        prepare(src, tmp_path / "out", strict=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    src = write(tmp_path / "d.jsonl", jsonl(*[chat(f"q{i}", "a") for i in range(10)]))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="already exists"):
        prepare(src, out)
    assert (out / "keep.txt").read_text() == "mine"
    prepare(src, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["eval.jsonl", "stats.json", "train.jsonl"]


def test_weight_zero_turns_are_context(tmp_path):
    row = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0},
                        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    only_context = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}
    read = read_rows(write(tmp_path / "d.jsonl", jsonl(row, only_context)))
    assert read.rows[0].messages[1] == {"role": "assistant", "content": "b", "weight": 0}
    assert read.problems[0].line == 2 and "no assistant turn" in read.problems[0].reason
