"""The adapter registry and how the Assistant uses it: an activated adapter
changes the skill's answers from the next turn on (no restart), a deactivated
one stops, and an adapter trained for another base model is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.adapters import AdapterError, AdapterRegistry, chat_template_hash, model_identity

PROMPT = [{"role": "user", "content": "My parcel never arrived"}]


@pytest.fixture(scope="module")
def own_llm(model_path):
    """A private copy of the model: loading adapters turns it into a PeftModel,
    which the session-wide model must not become."""
    from assistant.llm.local import LocalChatModel

    return LocalChatModel(model_path, max_queue=4)


@pytest.fixture(scope="module")
def lora_dir(model_path, tmp_path_factory) -> Path:
    """A LoRA adapter with random (non-zero) weights, so it visibly changes answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_path)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(out)
    return out


def register(registry: AdapterRegistry, lora_dir: Path, model_path: str, name: str = "gifts-v1", **overrides):
    identity = model_identity(model_path)
    fields = dict(skill="customer_service", base_model=identity.base_model, template_hash=identity.template_hash)
    fields.update(overrides)
    return registry.register(name, lora_dir, **fields)


def answer(assistant: Assistant) -> str:
    return assistant.run_turn(assistant.start_turn(PROMPT, model="customer_service")).reply


def test_registry_records_activation_and_manifest(tmp_path, lora_dir, model_path):
    registry = AdapterRegistry(tmp_path / "adapters")
    record = register(registry, lora_dir, model_path, dataset_hash="abc", metrics={"eval_loss": 1.5})
    assert (record.path / "adapter_config.json").is_file()
    assert record.template_hash == chat_template_hash(model_path) is not None
    assert not record.active and registry.active_for("customer_service") is None

    registry.activate("gifts-v1")
    assert registry.active_for("customer_service").name == "gifts-v1"
    assert [r.name for r in registry.active()] == ["gifts-v1"]
    # A second adapter of the same skill replaces the first when activated.
    register(registry, lora_dir, model_path, name="gifts-v2", activate=True)
    assert registry.active_for("customer_service").name == "gifts-v2"
    assert not registry.get("gifts-v1").active
    registry.deactivate("gifts-v2")
    assert registry.active_for("customer_service") is None
    assert registry.update_metrics("gifts-v1", {"adapter_accuracy": 0.9}).metrics == {
        "eval_loss": 1.5,
        "adapter_accuracy": 0.9,
    }


def test_registry_refuses_bad_adapters_and_leaves_nothing(tmp_path, lora_dir, model_path):
    registry = AdapterRegistry(tmp_path / "adapters")
    not_an_adapter = tmp_path / "plain"
    not_an_adapter.mkdir()
    (not_an_adapter / "notes.txt").write_text("hello")
    with pytest.raises(AdapterError, match="not a peft adapter folder"):
        register(registry, not_an_adapter, model_path)
    with pytest.raises(AdapterError, match="invalid"):
        register(registry, lora_dir, model_path, name="../escape")
    assert registry.list() == []
    assert not (tmp_path / "adapters").exists() or not any((tmp_path / "adapters").iterdir())

    register(registry, lora_dir, model_path)
    with pytest.raises(AdapterError, match="already exists"):
        register(registry, lora_dir, model_path)
    with pytest.raises(AdapterError, match="'nope' is not registered"):
        registry.activate("nope")
    # Nothing but the adapter and its manifest: no staging folders left behind.
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir()) == ["gifts-v1"]


def test_activated_adapter_is_used_without_restart_and_mismatch_is_refused(settings, own_llm, lora_dir, model_path):
    assistant = Assistant.from_settings(settings, llm=own_llm)
    try:
        base_answer = answer(assistant)
        assert own_llm.adapters() == []

        register(assistant.adapters, lora_dir, model_path, activate=True)
        adapted = answer(assistant)
        assert own_llm.adapters() == ["gifts-v1"]
        assert adapted != base_answer, "the adapter's random weights must change the greedy answer"
        assert answer(assistant) == adapted  # deterministic, and loaded only once

        # Another process (the CLI) deactivates it: the running assistant follows.
        AdapterRegistry(settings.adapters_dir).deactivate("gifts-v1")
        assert answer(assistant) == base_answer

        # An adapter trained on another base model is never used.
        register(assistant.adapters, lora_dir, model_path, name="foreign", base_model="Qwen2.5-0.5B", activate=True)
        assert assistant.adapter_loader.adapter_for("customer_service") is None
        assert answer(assistant) == base_answer
        assert "foreign" not in own_llm.adapters()

        # Nor one whose chat template differs from the served one.
        manifest = assistant.adapters.get("gifts-v1").path / "lepton_adapter.json"
        data = json.loads(manifest.read_text())
        data["template_hash"] = "0" * 16
        manifest.write_text(json.dumps(data))
        assistant.adapters.activate("gifts-v1")
        record = assistant.adapters.get("gifts-v1")
        assert "chat template" in record.problem_with(assistant.adapter_loader.identity)
    finally:
        assistant.close()
