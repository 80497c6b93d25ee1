"""LLM backends on the real embedded model: streaming, limits, stop strings,
queueing, LoRA adapters, and the OpenAI-compatible backend against a real server."""

from __future__ import annotations

import pytest

from assistant.errors import BackendBusy, BackendError
from assistant.llm import GenerationParams
from assistant.llm.local import LocalChatModel
from assistant.llm.openai_compat import OpenAIChatModel

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_streams_text_pieces_and_counts_tokens(llm):
    generation = llm.stream(QUESTION, GenerationParams(max_tokens=20))
    pieces = list(generation)
    assert len(pieces) > 1, "tokens arrive one by one, not as one block"
    assert "Paris" in "".join(pieces)
    assert generation.prompt_tokens > 5
    assert 0 < generation.completion_tokens <= 20
    assert generation.finish_reason == "stop"


def test_max_tokens_is_honoured(llm):
    completion = llm.complete([{"role": "user", "content": "Write a long story about a dragon."}],
                              GenerationParams(max_tokens=5))
    assert completion.completion_tokens == 5
    assert completion.finish_reason == "length"


def test_stop_string_ends_generation_and_is_not_returned(llm):
    prompt = [{"role": "user", "content": "What is the capital of France?"}]
    full = llm.complete(prompt, GenerationParams(max_tokens=20)).text
    assert "capital" in full
    stopped = llm.complete(prompt, GenerationParams(max_tokens=20, stop=["capital"]))
    assert stopped.finish_reason == "stop"
    assert "capital" not in stopped.text
    assert full.startswith(stopped.text)


def test_temperature_and_top_p_sample(llm):
    params = GenerationParams(max_tokens=12, temperature=1.5, top_p=0.95)
    texts = {llm.complete([{"role": "user", "content": "Say something."}], params).text for _ in range(3)}
    greedy = {llm.complete([{"role": "user", "content": "Say something."}], GenerationParams(max_tokens=12)).text
              for _ in range(2)}
    assert len(greedy) == 1, "temperature 0 is deterministic"
    assert len(texts) > 1, "sampling at temperature 1.5 varies"


def test_a_full_queue_answers_busy_and_frees_its_places(model_path):
    model = LocalChatModel(model_path, max_queue=1)
    running = model.stream(QUESTION, GenerationParams(max_tokens=30))
    next(running)  # holds the model
    waiting = model.stream(QUESTION, GenerationParams(max_tokens=4))  # takes the one queue place
    with pytest.raises(BackendBusy):
        model.stream(QUESTION, GenerationParams(max_tokens=4))
    waiting.close()  # never started: gives its place back
    running.close()
    assert model.complete(QUESTION, GenerationParams(max_tokens=3)).completion_tokens == 3


def test_lora_adapter_is_loaded_and_used_by_name(model_path, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # A real peft adapter with non-zero weights, so it changes the output.
    base = AutoModelForCausalLM.from_pretrained(model_path)
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")

    model = LocalChatModel(model_path)
    params = GenerationParams(max_tokens=8)
    before = model.complete(QUESTION, params).text
    with pytest.raises(BackendError, match="not loaded"):
        model.stream(QUESTION, params, adapter="demo")
    model.load_adapter("demo", str(tmp_path / "adapter"))
    assert model.adapters() == ["demo"]
    with_adapter = model.complete(QUESTION, params, adapter="demo").text
    without = model.complete(QUESTION, params).text
    assert with_adapter != before
    assert without == before, "the base model is unchanged when no adapter is asked for"


def test_openai_backend_talks_to_an_openai_compatible_server(live):
    remote = OpenAIChatModel(live.base_url + "/v1", model="customer_service")
    generation = remote.stream([{"role": "user", "content": "Where is my parcel?"}], GenerationParams(max_tokens=6))
    text = "".join(generation)
    assert text.strip()
    assert generation.completion_tokens > 0
    completion = remote.complete([{"role": "user", "content": "Hi, my order is late"}], GenerationParams(max_tokens=4))
    assert completion.completion_tokens > 0


def test_openai_backend_relays_the_endpoints_own_error(live):
    remote = OpenAIChatModel(live.base_url + "/v1", model="no_such_skill")
    with pytest.raises(BackendError, match="backend answered 404: model 'no_such_skill' does not exist"):
        remote.stream(QUESTION, GenerationParams(max_tokens=2))
    remote.close()


def test_openai_backend_unreachable_is_a_backend_error():
    remote = OpenAIChatModel("http://127.0.0.1:9/v1", model="x", timeout=2)
    with pytest.raises(BackendError, match="unreachable"):
        remote.complete(QUESTION, GenerationParams(max_tokens=2))
    with pytest.raises(BackendError, match="unreachable"):
        remote.stream(QUESTION, GenerationParams(max_tokens=2))


@pytest.mark.parametrize("kwargs,message", [
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"stop": ["a"] * 5}, "stop"),
])
def test_generation_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationParams(**kwargs)
