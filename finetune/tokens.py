"""Turn chat rows into training tensors with the base model's own chat template.

The loss is computed on assistant tokens only: every other position gets the
label -100 (ignored by cross-entropy). To find the assistant tokens we render the
conversation with the template and locate, for each assistant turn, the text the
template adds between "prompt for this turn" (rendered with the generation
prompt) and "conversation up to and including this turn". Tokens whose
characters fall in such a span are labelled; the template's end-of-turn marker
is included (the model must learn to stop), whitespace after it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FinetuneError

__all__ = ["IGNORE", "Encoded", "encode_messages", "prompt_text"]

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _render(tokenizer, messages, generation_prompt: bool) -> str:
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=generation_prompt)


def prompt_text(tokenizer, messages: list[dict[str, str]]) -> str:
    """The prompt a model sees before answering the last assistant turn of ``messages``."""
    return _render(tokenizer, messages[:-1], True)


def _assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    full = _render(tokenizer, messages, False)
    end_marker = tokenizer.eos_token or ""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight") == 0:
            continue
        before = _render(tokenizer, messages[:i], True)
        upto = _render(tokenizer, messages[: i + 1], False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise FinetuneError(
                "the model's chat template does not render conversations as a growing prefix; "
                "assistant-only loss cannot locate the answers"
            )
        start, end = len(before), len(upto)
        # Keep the end-of-turn marker, drop what the template puts after it.
        cut = upto.rfind(end_marker, start, end) if end_marker else -1
        if cut != -1:
            end = cut + len(end_marker)
        else:
            end = start + len(upto[start:end].rstrip())
        spans.append((start, end))
    return full, spans


def encode_messages(tokenizer, messages: list[dict[str, str]], max_length: int) -> Encoded:
    """Token ids and labels (-100 outside assistant turns), cut on the left to ``max_length``."""
    full, spans = _assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = []
    for token, (a, b) in zip(ids, enc["offset_mapping"]):
        inside = any(s <= a and b <= e and b > a for s, e in spans)
        labels.append(token if inside else IGNORE)
    if len(ids) > max_length:
        # The answer is at the end; the oldest context is what can go.
        ids, labels = ids[-max_length:], labels[-max_length:]
    return Encoded(ids, labels)
