"""The label mask: loss on assistant tokens only, with the model's own chat template."""

from __future__ import annotations

import pytest

from finetune.tokens import IGNORE, encode_messages

# Needs the converted embedded model's tokenizer (a one-time conversion per session).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tokenizer(model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def labelled_text(tokenizer, enc) -> str:
    return tokenizer.decode([t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE])


def test_only_the_answer_and_its_end_marker_are_labelled(tokenizer):
    messages = [{"role": "system", "content": "Banking intent."},
                {"role": "user", "content": "Where is my new card?"},
                {"role": "assistant", "content": "card_arrival"}]
    enc = encode_messages(tokenizer, messages, max_length=256)
    # The ids are exactly what the template renders, so training sees what serving sees.
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(enc.input_ids) == rendered
    assert labelled_text(tokenizer, enc) == "card_arrival" + tokenizer.eos_token
    # Labels equal the ids where set; everything before the answer is masked.
    first = next(i for i, label in enumerate(enc.labels) if label != IGNORE)
    assert all(label == IGNORE for label in enc.labels[:first])
    assert all(label in (IGNORE, tok) for tok, label in zip(enc.input_ids, enc.labels))
    assert "Where is my new card?" in tokenizer.decode(enc.input_ids[:first])
    assert enc.target_tokens == len(tokenizer("card_arrival", add_special_tokens=False)["input_ids"]) + 1


def test_every_assistant_turn_is_labelled_except_weight_zero(tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"},
                {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye now"}]
    both = encode_messages(tokenizer, messages, max_length=256)
    assert labelled_text(tokenizer, both) == f"Hello there{tokenizer.eos_token}Goodbye now{tokenizer.eos_token}"
    messages[1] = {**messages[1], "weight": 0}
    last = encode_messages(tokenizer, messages, max_length=256)
    assert labelled_text(tokenizer, last) == f"Goodbye now{tokenizer.eos_token}"
    assert last.input_ids == both.input_ids


def test_long_rows_lose_their_oldest_tokens(tokenizer):
    messages = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "short answer"}]
    enc = encode_messages(tokenizer, messages, max_length=32)
    assert len(enc.input_ids) == len(enc.labels) == 32
    assert labelled_text(tokenizer, enc) == "short answer" + tokenizer.eos_token
