"""Repetition control reaches every backend that supports it, from the settings, and
survives a skill's own generation options."""

from __future__ import annotations

import pytest

from assistant.graph import _params_for
from assistant.llm import GenerationParams
from assistant.llm.openai_compat import OpenAIChatModel
from assistant.llm.vllm import VLLMChatModel


def test_out_of_range_values_are_refused_with_what_to_change():
    with pytest.raises(ValueError, match="repetition_penalty must be between 1 and 2"):
        GenerationParams(repetition_penalty=0.5)
    with pytest.raises(ValueError, match="no_repeat_ngram_size must be between 0 and 10"):
        GenerationParams(no_repeat_ngram_size=11)


def test_vllm_gets_its_repetition_penalty_and_a_generic_endpoint_nothing_it_may_refuse():
    params = GenerationParams(max_tokens=9, repetition_penalty=1.3, no_repeat_ngram_size=3)
    messages = [{"role": "user", "content": "hi"}]
    vllm = VLLMChatModel("http://127.0.0.1:9", model="m")._body(messages, params, None)
    assert vllm["repetition_penalty"] == 1.3 and "no_repeat_ngram_size" not in vllm
    generic = OpenAIChatModel("http://127.0.0.1:9/v1", model="m")._body(messages, params, None)
    assert "repetition_penalty" not in generic and generic["max_tokens"] == 9
    off = VLLMChatModel("http://127.0.0.1:9", model="m")._body(messages, GenerationParams(), None)
    assert "repetition_penalty" not in off


def test_a_skills_own_options_keep_the_repetition_control():
    base = GenerationParams(max_tokens=100, repetition_penalty=1.2, no_repeat_ngram_size=3, stop=["\n\n"])
    narrowed = _params_for(base, 20, 0.0, ["END"])
    assert (narrowed.max_tokens, narrowed.repetition_penalty, narrowed.no_repeat_ngram_size, narrowed.stop) == (
        20, 1.2, 3, ["\n\n", "END"])


@pytest.mark.slow
def test_the_settings_reach_the_local_models_generate(settings, llm):
    from assistant import Assistant

    tuned = settings.model_copy(update={"repetition_penalty": 1.5, "no_repeat_ngram_size": 2})
    assistant = Assistant.from_settings(tuned, llm=llm)
    try:
        params = assistant.params(max_tokens=24)
        assert (params.repetition_penalty, params.no_repeat_ngram_size) == (1.5, 2)
    finally:
        assistant.close()
    prompt = [{"role": "user", "content": "Say sorry ten times."}]
    plain = llm.complete(prompt, GenerationParams(max_tokens=24)).text
    penalised = llm.complete(prompt, params).text
    assert plain != penalised, "the penalties change the greedy answer"


def test_openai_penalties_and_seed_reach_both_http_backends_only_when_set():
    params = GenerationParams(presence_penalty=0.5, frequency_penalty=-0.25, seed=11)
    messages = [{"role": "user", "content": "hi"}]
    for backend in (VLLMChatModel("http://127.0.0.1:9", model="m"), OpenAIChatModel("http://127.0.0.1:9/v1", model="m")):
        body = backend._body(messages, params, None)
        assert (body["presence_penalty"], body["frequency_penalty"], body["seed"]) == (0.5, -0.25, 11)
        plain = backend._body(messages, GenerationParams(), None)
        assert not {"presence_penalty", "frequency_penalty", "seed"} & set(plain)
    with pytest.raises(ValueError, match="presence_penalty and frequency_penalty must be between -2 and 2"):
        GenerationParams(frequency_penalty=2.5)


def test_the_local_penalties_subtract_per_answer_token_as_openai_defines_them():
    import torch

    from assistant.llm.batching import BatchDecoder, Row, adjust_scores, remember

    row = Row([5, 5], GenerationParams(presence_penalty=0.5, frequency_penalty=0.25), None)
    BatchDecoder.index_prompt(row)  # tokens of the prompt are never penalised
    for token in (1, 2, 2):
        remember(row, token)
    penalised = adjust_scores(torch, torch.zeros(6), row)
    assert penalised.tolist() == [0.0, -0.75, -1.0, 0.0, 0.0, 0.0]


def test_repetition_penalty_and_no_repeat_ngrams_follow_transformers():
    """The decoder's own score adjustments give what transformers' processors give."""
    import torch
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    from assistant.llm.batching import BatchDecoder, Row, adjust_scores, remember

    torch.manual_seed(0)
    sequence = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]
    scores = torch.randn(12)
    params = GenerationParams(repetition_penalty=1.3, no_repeat_ngram_size=2)
    row = Row(sequence[:6], params, None)
    BatchDecoder.index_prompt(row)
    for token in sequence[6:]:
        remember(row, token)
    ours = adjust_scores(torch, scores.clone(), row)
    ids = torch.tensor([sequence])
    theirs = NoRepeatNGramLogitsProcessor(2)(ids, RepetitionPenaltyLogitsProcessor(1.3)(ids, scores.clone()[None]))
    assert torch.equal(ours, theirs[0])


@pytest.mark.slow
def test_a_seed_makes_the_local_models_sampling_repeatable(llm):
    prompt = [{"role": "user", "content": "Say something."}]
    seeded = GenerationParams(max_tokens=12, temperature=1.5, seed=1234)
    first, second = (llm.complete(prompt, seeded).text for _ in range(2))
    assert first == second
    others = {llm.complete(prompt, GenerationParams(max_tokens=12, temperature=1.5, seed=s)).text for s in (1, 2, 3)}
    assert len(others) > 1, "different seeds draw differently"
    penalised = llm.complete([{"role": "user", "content": "Say sorry ten times."}],
                             GenerationParams(max_tokens=24, frequency_penalty=2.0)).text
    assert penalised != llm.complete([{"role": "user", "content": "Say sorry ten times."}],
                                     GenerationParams(max_tokens=24)).text
