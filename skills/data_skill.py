"""Skills a tenant makes from its own data, with no code: ``lepton skills create``.

A data skill is a name, a description, routing examples, instructions and,
optionally, a knowledge collection of the tenant's documents. It answers the
way customer service does (``skills.customer_service``): from its collection,
quoting the best passage with its citation (or, with the skill's ``answer``
option set to ``generated``, letting the model write from numbered sources), and
declining with a fixed line when its documents hold nothing close to the question.
A data skill without documents answers with the model under its instructions.

The definition lives in the assistant's database, per tenant
(``assistant.tenant_skills``); this module only turns one into a ``Skill`` and
checks a definition before anything is stored.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

from .base import NAME_PATTERN, RESERVED_NAMES, Skill, SkillContext, SkillReply
from .customer_service import CustomerServiceSkill

__all__ = ["DataSkill", "MIN_EXAMPLES", "collection_for", "check_definition", "read_examples", "default_prompt"]

#: Fewest routing examples a data skill may have: with fewer the router cannot tell
#: its messages from the other skills'.
MIN_EXAMPLES = 5
#: Longest routing example, in characters (an example is one message a user sends).
MAX_EXAMPLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 200
MAX_PROMPT_CHARS = 8000


def collection_for(name: str) -> str:
    """The knowledge collection a data skill's documents go into (per tenant)."""
    return "skill-" + name.replace("_", "-")


def default_prompt(description: str) -> str:
    """The instructions of a data skill created without ``--prompt``."""
    return (f"You are a business's assistant for this: {description.rstrip('.')}. Answer the user's question "
            "politely and briefly. If you are not sure, say so and offer to connect them with a person. "
            "Never invent prices, dates, policies or account details.")


def read_examples(path: Path) -> list[str]:
    """Routing examples from a file: a ``.jsonl`` of objects with a ``text`` field, a
    ``.csv`` with a ``text`` column, or any other text file with one example per line
    (blank lines and lines starting with ``#`` are skipped). Duplicates are dropped.
    Raises ValueError (with the file's name) when it cannot be read or has none."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read examples file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    suffix = path.suffix.lower()
    texts: list[Any] = []
    if suffix == ".jsonl":
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path} line {n} is not JSON") from None
            if not isinstance(record, dict) or "text" not in record:
                raise ValueError(f"{path} line {n} has no \"text\" field")
            texts.append(record["text"])
    elif suffix == ".csv":
        rows = csv.DictReader(raw.splitlines())
        if "text" not in (rows.fieldnames or []):
            raise ValueError(f"{path} has no \"text\" column (columns: {', '.join(rows.fieldnames or [])})")
        texts = [row["text"] for row in rows]
    else:
        texts = [line for line in raw.splitlines() if not line.lstrip().startswith("#")]
    examples = []
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"{path}: every example must be text, not {type(text).__name__}")
        text = " ".join(text.split())
        if text and text not in examples:
            examples.append(text)
    return examples


def check_definition(name: str, description: str, examples: list[str], prompt: str) -> None:
    """Raises ValueError with a one-line reason when a data skill cannot be made so."""
    if not NAME_PATTERN.match(name) or "__" in name:
        raise ValueError(f"skill name {name!r} must be 2-49 characters of a-z, 0-9 and single _, "
                         "starting with a letter")
    if name in RESERVED_NAMES:
        raise ValueError(f"skill name {name!r} is reserved ({', '.join(RESERVED_NAMES)})")
    if not description.strip() or len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(f"the description must be 1-{MAX_DESCRIPTION_CHARS} characters")
    if len(examples) < MIN_EXAMPLES:
        raise ValueError(f"a skill needs at least {MIN_EXAMPLES} different routing examples; got {len(examples)}")
    long = next((e for e in examples if len(e) > MAX_EXAMPLE_CHARS), None)
    if long is not None:
        raise ValueError(f"routing examples are single messages of at most {MAX_EXAMPLE_CHARS} characters; "
                         f"one has {len(long)}")
    if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the instructions must be 1-{MAX_PROMPT_CHARS} characters")


class DataSkill(CustomerServiceSkill):
    """A tenant's skill made from data (see the module docstring). Options (the
    skill's ``LEPTON_SKILL_OPTIONS`` entry) are customer service's: ``answer``, ``sources``."""

    decline_reply: ClassVar[str] = ("I don't know that from our documents — would you like me to connect you "
                                    "with a person?")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "DataSkill":
        """The skill a stored definition (``Store.data_skills``) describes."""
        return cls(name=record["name"], description=record["description"], examples=list(record["examples"]),
                   system_prompt=record["prompt"], collection=record.get("collection"))

    def respond(self, ctx: SkillContext) -> SkillReply:
        if self.collection is None:  # no documents: the model under the tenant's instructions
            return Skill.respond(self, ctx)
        return super().respond(ctx)

    def commands(self) -> None:
        return None

    def actions(self) -> tuple:
        return ()
