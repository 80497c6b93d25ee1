"""Training, evaluation, the gate, the registry commands and export on the real
embedded model, with a handful of rows and a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.adapters import AdapterError, AdapterRegistry, chat_template_hash, model_identity
from assistant.cli import main
from assistant.settings import Settings
from finetune.config import TrainConfig
from finetune.data import prepare
from finetune.train import run_dir, train

pytestmark = pytest.mark.slow

COLOURS = ["red", "blue", "green", "yellow"]


def cli(capsys, *argv: str) -> tuple[dict | None, str]:
    """Run lepton successfully; returns the last stdout line as JSON (if it is) and stderr."""
    try:
        main(list(argv))
    except SystemExit as exc:  # pragma: no cover - shown on failure
        out, err = capsys.readouterr()
        raise AssertionError(f"lepton {' '.join(argv)} exited {exc.code}: {err}") from None
    out, err = capsys.readouterr()
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return (json.loads(last) if last.startswith("{") else None), err


def fails(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 1
    # Model loading may draw progress bars first; the failure itself is one line, the last.
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("Error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A label task: every answer is one colour word, the one the user names last."""
    folder = tmp_path_factory.mktemp("ft-data")
    rows = []
    for i in range(24):
        colour = COLOURS[i % 4]
        rows.append({"messages": [{"role": "system", "content": "Answer with the colour."},
                                  {"role": "user", "content": f"Item {i}: the box is {colour}."},
                                  {"role": "assistant", "content": colour}]})
    src = folder / "colours.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prepare(src, folder / "prepared", eval_size=6, seed=1)
    return folder / "prepared"


@pytest.fixture(scope="module")
def ft_settings(tmp_path_factory, model_path) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("ft-home"), model=model_path)


@pytest.fixture(scope="module")
def trained(ft_settings, prepared, model_path):
    """One adapter trained through the CLI (shared by the tests that only read it)."""
    config = TrainConfig(batch_size=6, learning_rate=3e-3, lora_r=8, lora_alpha=16, max_steps=8, save_every=3, seed=5)
    path = Path(ft_settings.data_dir) / "colours-config.json"
    path.write_text(json.dumps(config.to_dict()))
    main_args = ["--data-dir", str(ft_settings.data_dir), "finetune", "train", "--skill", "customer_service",
                 "--data", str(prepared), "--config", str(path), "--name", "colours", "--base-model", model_path,
                 "--json"]
    try:
        main(main_args)
    except SystemExit as exc:  # pragma: no cover
        raise AssertionError(f"train exited {exc.code}") from None
    return AdapterRegistry(ft_settings.adapters_dir).get("colours")


def test_train_registers_a_complete_inactive_adapter(trained, model_path, prepared):
    record = trained
    assert not record.active and record.skill == "customer_service"
    assert record.base_model == model_identity(model_path).base_model == "SmolLM2-135M-Instruct"
    assert record.template_hash == chat_template_hash(model_path) == chat_template_hash(record.path)
    names = {p.name for p in record.path.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "chat_template.jinja", "tokenizer.json",
            "train_config.json", "train_metrics.json", "eval.jsonl"} <= names
    saved = json.loads((record.path / "train_config.json").read_text())
    assert saved["train"]["max_steps"] == 8 and saved["train"]["seed"] == 5
    assert record.config == saved and record.dataset_hash == json.loads((prepared / "stats.json").read_text())["dataset_hash"]
    metrics = record.metrics["train"]
    assert metrics["steps"] == 8 and metrics["final_loss"] < metrics["first_loss"]
    assert metrics["tokens_per_second"] > 0 and metrics["peak_rss_mb"] > 100
    assert (record.path / "eval.jsonl").read_text() == (prepared / "eval.jsonl").read_text()


def test_saved_config_repeats_the_run_and_interrupt_resume_matches(ft_settings, prepared, trained, capsys,
                                                                  model_path):
    """The adapter's own train_config.json repeats the run bit for bit; so does a
    run interrupted by Ctrl-C and resumed from its checkpoint."""
    from safetensors.torch import load_file

    config_path = trained.path / "train_config.json"
    cli(capsys, "--data-dir", str(ft_settings.data_dir), "finetune", "train", "--skill", "customer_service",
        "--data", str(prepared), "--config", str(config_path), "--name", "repeat", "--base-model", model_path)

    def interrupt(step, loss):
        if step == 4:
            raise KeyboardInterrupt

    config = TrainConfig(**json.loads(config_path.read_text())["train"])
    with pytest.raises(KeyboardInterrupt):
        train(ft_settings, skill="customer_service", data=prepared, name="resumed", config=config,
              base_model=model_path, progress=False, log=lambda m: None, on_step=interrupt)
    registry = AdapterRegistry(ft_settings.adapters_dir)
    with pytest.raises(AdapterError):
        registry.get("resumed")  # nothing half-registered
    assert not [p for p in ft_settings.adapters_dir.iterdir() if "resumed" in p.name]
    checkpoint = json.loads((run_dir(ft_settings, "resumed") / "checkpoint" / "run.json").read_text())
    assert checkpoint["step"] == 4
    capsys.readouterr()  # the in-process run's model-loading output is not the CLI's

    # Without --resume the interrupted run is not silently overwritten.
    err = fails(capsys, "--data-dir", str(ft_settings.data_dir), "finetune", "train", "--skill", "customer_service",
                "--data", str(prepared), "--config", str(config_path), "--name", "resumed", "--base-model", model_path)
    assert "interrupted at step 4" in err and "--resume" in err
    report, _ = cli(capsys, "--data-dir", str(ft_settings.data_dir), "finetune", "train", "--skill",
                    "customer_service", "--data", str(prepared), "--config", str(config_path), "--name", "resumed",
                    "--resume", "--base-model", model_path, "--json")
    assert (report["start_step"], report["steps"]) == (4, 8)
    assert report["tokens"] == trained.metrics["train"]["tokens"]  # counters span both segments
    assert not run_dir(ft_settings, "resumed").exists()

    reference = load_file(trained.path / "adapter_model.safetensors")
    for name in ("repeat", "resumed"):
        weights = load_file(registry.get(name).path / "adapter_model.safetensors")
        assert weights.keys() == reference.keys()
        for key in reference:
            assert (weights[key] - reference[key]).abs().max() < 1e-5, (name, key)


def test_eval_gate_activate_deactivate_list(ft_settings, trained, capsys):
    home = ["--data-dir", str(ft_settings.data_dir), "finetune"]
    err = fails(capsys, *home, "activate", "colours")
    assert "has not been evaluated" in err

    result, _ = cli(capsys, *home, "eval", "colours", "--no-activate", "--json")
    assert result["label_task"] and result["rows"] == 6
    for key in ("base_loss", "adapter_loss", "base_accuracy", "adapter_accuracy"):
        assert isinstance(result[key], float)
    assert result["adapter_loss"] < result["base_loss"]
    assert result["gate_passed"] == (result["adapter_accuracy"] > result["base_accuracy"])
    assert not result["activated"]
    registry = AdapterRegistry(ft_settings.adapters_dir)
    assert registry.get("colours").metrics["eval"]["adapter_loss"] == result["adapter_loss"]

    if result["gate_passed"]:
        cli(capsys, *home, "activate", "colours")
    else:
        assert "did not beat the base model" in fails(capsys, *home, "activate", "colours")
        cli(capsys, *home, "activate", "colours", "--force")
    assert registry.active_for("customer_service").name == "colours"
    listing, _ = cli(capsys, *home, "list", "--json")
    assert [(a["name"], a["active"]) for a in listing["adapters"] if a["name"] == "colours"] == [("colours", True)]
    cli(capsys, *home, "deactivate", "colours")
    assert registry.active_for("customer_service") is None


def test_gate_refuses_an_adapter_that_is_no_better(ft_settings, model_path, capsys):
    """An untrained LoRA (B = 0) equals the base model: the gate must not activate it,
    and export must refuse it as a no-op."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    noop = get_peft_model(AutoModelForCausalLM.from_pretrained(model_path),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    folder = Path(ft_settings.data_dir) / "noop-src"
    noop.save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(folder)
    (folder / "eval.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "Tell me about your opening hours and how I can reach support."},
        {"role": "assistant", "content": "We are open from nine to five on weekdays; write to us any time."}]}) + "\n")
    identity = model_identity(model_path)
    AdapterRegistry(ft_settings.adapters_dir).register(
        "noop", folder, skill="customer_service", base_model=identity.base_model,
        template_hash=identity.template_hash, config={"base_model_path": model_path})
    home = ["--data-dir", str(ft_settings.data_dir), "finetune"]
    result, _ = cli(capsys, *home, "eval", "noop", "--json")
    assert not result["label_task"] and result["gate_metric"] == "loss"
    assert abs(result["adapter_loss"] - result["base_loss"]) < 1e-6
    assert not result["gate_passed"] and not result["activated"]
    out = Path(ft_settings.data_dir) / "noop-merged"
    assert "does not change the base model's outputs" in fails(capsys, *home, "export", "noop", "--out", str(out))
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".noop-merged")]


def test_export_merges_and_verifies(ft_settings, trained, capsys):
    from transformers import AutoModelForCausalLM

    out = Path(ft_settings.data_dir) / "merged"
    report, _ = cli(capsys, "--data-dir", str(ft_settings.data_dir), "finetune", "export", "colours",
                    "--out", str(out), "--json")
    assert report["max_abs_diff_vs_adapter"] <= report["tolerance"] < report["max_abs_diff_vs_base"]
    assert (out / "config.json").is_file() and (out / "chat_template.jinja").is_file()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert "already exists" in fails(capsys, "--data-dir", str(ft_settings.data_dir), "finetune", "export",
                                     "colours", "--out", str(out))
