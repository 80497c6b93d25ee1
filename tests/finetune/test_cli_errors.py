"""Bad input through the real ``lepton`` entry point: one "Error:" line, exit 1, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def only_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


def assert_nothing_written(folder: Path, keep: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == keep


def rows(n: int) -> str:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(n))


@pytest.mark.parametrize("name, content, args, message", [
    ("empty.jsonl", "", [], "empty.jsonl is empty"),
    ("blank.csv", "\n\n  \n", [], "blank.csv is empty"),
    ("notes.txt", "Dear team,\nplease train on this.\n", [], "cannot tell the format of notes.txt"),
    ("faq.csv", "question,answer\nq,a\n", ["--format", "openai"], "no usable rows as openai: line 1: not valid JSON"),
    ("table.csv", "name,city\nx,y\n", [], "none of the column pairs"),
    ("users.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n' * 3, [], "has no assistant turns"),
    ("few.jsonl", rows(5), ["--eval-size", "5"], "an eval set of 5 rows leaves nothing to train on: there are only 5"),
    ("few2.jsonl", rows(5), ["--eval-size", "9"], "an eval set of 9 rows"),
    ("bad.jsonl", rows(3) + '{"messages": []}\n', ["--strict"], "line 4: no messages; --strict"),
    ("bitext.csv", "instruction,response\nq,a\n", ["--prompt-column", "instruction"],
     "name both --prompt-column and --answer-column"),
    ("bitext2.csv", "instruction,response\nq,a\n", ["--prompt-column", "instruction", "--answer-column", "reply"],
     "the CSV header has no column 'reply' (its columns: instruction, response)"),
    ("same.csv", "instruction,response\nq,a\n", ["--prompt-column", "instruction", "--answer-column", "Instruction"],
     "the prompt, answer and system columns must differ"),
    ("chats.jsonl", rows(3), ["--prompt-column", "q", "--answer-column", "a", "--format", "openai"],
     "apply to CSV files and JSON records, not to --format openai"),
    ("records.jsonl", '{"q": "x"}\n' * 3, ["--prompt-column", "q", "--answer-column", "a"],
     "no usable rows as fields: line 1: no field 'a'"),
])
def test_prepare_bad_input(tmp_path, capsys, name, content, args, message):
    src = tmp_path / name
    src.write_text(content)
    code, out, err = run(capsys, "--data-dir", str(tmp_path / "data"), "finetune", "prepare", str(src),
                         "--out", str(tmp_path / "out"), *args)
    assert code == 1
    assert message in only_line(err)
    assert out == ""
    assert_nothing_written(tmp_path, {name})


def test_prepare_eval_fraction_out_of_range(tmp_path, capsys):
    src = tmp_path / "d.jsonl"
    src.write_text(rows(5))
    code, _, err = run(capsys, "finetune", "prepare", str(src), "--out", str(tmp_path / "out"), "--eval-fraction", "1.5")
    assert code == 1 and "--eval-fraction must be between 0 and 1" in only_line(err)
    assert_nothing_written(tmp_path, {"d.jsonl"})


def test_prepare_missing_input(tmp_path, capsys):
    code, _, err = run(capsys, "finetune", "prepare", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out"))
    assert code == 1 and "nope.jsonl is not a file" in only_line(err)
    assert_nothing_written(tmp_path, set())


def test_prepare_json_summary_is_last_line(tmp_path, capsys):
    src = tmp_path / "d.jsonl"
    src.write_text(rows(10) + "{oops\n")
    with pytest.raises(SystemExit) if False else _no_exit():
        main(["finetune", "prepare", str(src), "--out", str(tmp_path / "out"), "--eval-size", "2", "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["train_rows"], summary["eval_rows"], summary["invalid"]) == (8, 2, 1)
    assert "skipped line 11: not valid JSON" in err


class _no_exit:
    """main() returns normally on success; a SystemExit would be a failure."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is SystemExit:
            raise AssertionError(f"lepton exited with {value.code}")
        return False


@pytest.fixture
def prepared(tmp_path) -> Path:
    from finetune.data import prepare

    src = tmp_path / "d.jsonl"
    src.write_text(rows(12))
    prepare(src, tmp_path / "prepared", eval_size=2)
    return tmp_path / "prepared"


@pytest.mark.parametrize("base", ["/nonexistent/model-folder", "no-such-model"])
def test_train_base_model_that_does_not_exist(tmp_path, capsys, prepared, base):
    data_dir = tmp_path / "data"
    code, _, err = run(capsys, "--data-dir", str(data_dir), "finetune", "train", "--skill", "customer_service",
                       "--data", str(prepared), "--base-model", base, "--name", "x")
    assert code == 1
    assert base in only_line(err) and "does not exist" in err
    assert not (data_dir / "adapters").exists() and not (data_dir / "finetune-runs").exists()


def test_train_unknown_skill_and_unprepared_data(tmp_path, capsys, prepared):
    code, _, err = run(capsys, "--data-dir", str(tmp_path / "data"), "finetune", "train", "--skill", "astrology",
                       "--data", str(prepared))
    assert code == 1 and "skill 'astrology' is neither installed nor a data skill" in only_line(err)
    code, _, err = run(capsys, "--data-dir", str(tmp_path / "data"), "finetune", "train", "--skill",
                       "customer_service", "--data", str(tmp_path))
    assert code == 1 and "is not a prepared data set" in only_line(err)
    assert not (tmp_path / "data" / "adapters").exists()


def test_train_bad_config_file(tmp_path, capsys, prepared):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"lora_r": 0, "learning_rate": -1}))
    code, _, err = run(capsys, "--data-dir", str(tmp_path / "data"), "finetune", "train", "--skill",
                       "customer_service", "--data", str(prepared), "--config", str(cfg))
    assert code == 1
    assert "lora_r must be at least 1; learning_rate must be positive" in only_line(err)
    cfg.write_text(json.dumps({"lora_rank": 8}))
    code, _, err = run(capsys, "finetune", "train", "--skill", "customer_service", "--data", str(prepared),
                       "--config", str(cfg))
    assert code == 1 and "unknown training config keys: lora_rank" in only_line(err)


def test_registry_commands_on_unknown_adapter(tmp_path, capsys):
    for argv in (["eval", "ghost"], ["activate", "ghost"], ["deactivate", "ghost"],
                 ["export", "ghost", "--out", str(tmp_path / "m")]):
        code, _, err = run(capsys, "--data-dir", str(tmp_path / "data"), "finetune", *argv)
        assert code == 1 and "adapter 'ghost' is not registered" in only_line(err)
    assert not (tmp_path / "m").exists()


def test_export_feedback_without_database(tmp_path, capsys):
    code, _, err = run(capsys, "--data-dir", str(tmp_path / "data"), "finetune", "export-feedback",
                       "--skill", "customer_service", "--out", str(tmp_path / "fb.jsonl"))
    assert code == 1 and "no feedback has been recorded" in only_line(err)
    assert not (tmp_path / "fb.jsonl").exists()


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_defaults_to_what_the_cpu_computes_natively(monkeypatch, native):
    """A CPU without native bfloat16 trains in float32 by default (emulated bf16 is slower);
    a config file's explicit choice wins, and the value used is what the adapter saves."""
    import finetune.config as config_module
    from finetune.config import TrainConfig, load_config

    monkeypatch.setattr(config_module, "native_bf16", lambda: native)
    assert TrainConfig().bf16 is native and TrainConfig().to_dict()["bf16"] is native
    assert load_config(None, bf16=not native).bf16 is (not native)
