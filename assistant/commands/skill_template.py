"""``lepton skills new NAME``: a new skill's plugin package, ready to install and test.

The skeleton is a working skill, not a stub: it answers a few questions from a
table of fixed answers, gives anything else to the model under its system
prompt, and comes with tests (``skills.testing.SkillHarness``) that pass as
written. Its files::

    DIR/pyproject.toml                    distribution lepton-skill-<name>, entry point <name>
    DIR/README.md                         install, try, test, make it yours
    DIR/lepton_skill_<name>/__init__.py   the Skill
    DIR/tests/test_<name>.py              its tests

NAME and DIR are checked before anything is written, and the files are written
into a hidden folder beside DIR that is renamed to DIR at the end, so a bad
name, a taken name or a folder in the way leaves the disk as it was.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path
from string import Template

import click

__all__ = ["new_skill", "render_skeleton"]

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "${dist}"
version = "0.1.0"
description = ${description_literal}
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["lepton-assistant"]

[project.optional-dependencies]
test = ["pytest"]

# How Lepton finds the skill: the entry point's name must equal the skill's `name`.
[project.entry-points."lepton.skills"]
${name} = "${package}:skill"

[tool.setuptools]
packages = ["${package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra"
''')

PACKAGE = Template('''\
"""The ${name} skill for Lepton Assistant, made with `lepton skills new ${name}`.

It answers a few questions with fixed text from FAQ and gives anything else
to the language model under its system prompt. Make it yours: change the
description, the routing examples, the prompt, FAQ and respond(). The whole
contract is in Lepton's skills/base.py and docs/writing-a-skill.md.
"""

from __future__ import annotations

import re

from skills import Decision, Skill, SkillContext, SkillReply

# Change this when FAQ changes: audit records name the version that answered.
FAQ_VERSION = "faq-1"

# topic: (words that ask about it, the answer). A message with any of the words gets
# the answer word for word; the model is not asked, so it cannot get it wrong.
# Replace these with your own questions and answers.
FAQ = {
    "hours": ({"open", "opening", "hours", "close", "closed"},
              "We are open Monday to Friday, 9:00 to 17:00."),
    "contact": ({"contact", "email", "phone", "call", "reach"},
                "Write to help@example.com; we answer within one working day."),
    "prices": ({"price", "prices", "cost", "costs", "pricing", "fee"},
               "The basic plan is free; the team plan costs 10 EUR per user and month."),
}


def faq_topic(message: str) -> str | None:
    """The first FAQ topic the message asks about, or None."""
    words = set(re.findall(r"[a-z0-9]+", message.lower()))
    return next((topic for topic, (keys, _) in FAQ.items() if keys & words), None)


class ${class_name}(Skill):
    def respond(self, ctx: SkillContext) -> SkillReply:
        topic = faq_topic(ctx.user_message)
        if topic is not None:
            answer = FAQ[topic][1]
            ctx.say(answer)  # fixed text, streamed to the user
            # extras appear in the response's `lepton` object; decisions go to the audit log.
            return SkillReply(answer, {"faq_topic": topic},
                              decisions=[Decision("faq_topic", topic, version=FAQ_VERSION)])
        # Anything else: the model answers under the system prompt, seeing the conversation.
        prompt = [{"role": "system", "content": self.system_prompt}]
        prompt += [m for m in ctx.history() if m["role"] != "system"]
        return SkillReply(ctx.generate(prompt, max_tokens=200), {"faq_topic": None})


skill = ${class_name}(
    # The skill's id (the `model` name asking for it); keep it equal to the entry point in pyproject.toml.
    name="${name}",
    # One line, shown in the list of capabilities.
    description=${description_literal},
    # Messages this skill should take: the router learns from them at the next start.
    # Write twenty or more, as your users would; at least 3 are required.
    examples=[
        "When are you open?",
        "What are your opening hours on Friday?",
        "How can I contact you?",
        "What is your email address?",
        "How much does the team plan cost?",
        "Do you have a price list?",
    ],
    system_prompt="You answer questions about our service briefly and politely. "
                  "When you do not know the answer, say so and suggest writing to help@example.com.",
)
''')

TESTS = Template('''\
"""The ${name} skill, turn by turn, without a server or a model (skills.testing)."""

from skills import load_skills
from skills.testing import ScriptedModel, SkillHarness

from ${package} import FAQ, skill


def test_a_faq_question_gets_the_fixed_answer_without_the_model(tmp_path):
    harness = SkillHarness(skill, tmp_path)
    turn = harness.send("When do you open on Monday?")
    assert turn.said == FAQ["hours"][1]
    assert turn.reply.extras == {"faq_topic": "hours"}
    assert harness.audited[0].outcome == "hours"
    assert harness.model.calls == []


def test_anything_else_goes_to_the_model_under_the_system_prompt(tmp_path):
    harness = SkillHarness(skill, tmp_path, model=ScriptedModel(["Sorry, I do not know."]))
    turn = harness.send("Can you recommend a good book?")
    assert turn.said == "Sorry, I do not know."
    assert turn.reply.extras == {"faq_topic": None}
    prompt = harness.model.calls[0]["messages"]
    assert prompt[0] == {"role": "system", "content": skill.system_prompt}
    assert prompt[-1] == {"role": "user", "content": "Can you recommend a good book?"}


def test_lepton_finds_the_installed_skill_by_its_name():
    loaded = load_skills(["${name}"])
    assert "${name}" in loaded.skills, f"install this package first (pip install -e .): {loaded.failures}"
''')

README = Template('''\
# ${dist}

${description}

A skill for Lepton Assistant, made with `lepton skills new ${name}`.
It answers a few questions (opening hours, contact, prices) with fixed text and gives anything
else to the language model under its system prompt.

## Install

In the environment Lepton is installed in:

```bash
pip install -e .
lepton skills list                  # ${name}  ${description}
```

The router learns the skill's routing examples at the next start; `lepton chat --skill ${name}`
or `model: "${name}"` in an API request asks for it explicitly.

## Test

```bash
python -m pytest
```

The tests run the skill turn by turn with `skills.testing.SkillHarness`: no server, no model.

## Make it yours

All of it is in `${package}/__init__.py`:

- `description`: one line, shown in the list of capabilities;
- `examples`: messages the skill should take, the router's training data (twenty or more);
- `system_prompt`: the model's instructions when it answers;
- `FAQ`: the questions answered with fixed text;
- `respond(ctx)`: one turn; see Lepton's `docs/writing-a-skill.md` for what `ctx` offers
  (the conversation, state between turns, knowledge search) and what a `SkillReply` can say.

Keep the skill's `name` equal to the entry point's name in `pyproject.toml`.
''')


def skeleton_names(name: str) -> dict[str, str]:
    """The names a skill's package is built from: distribution, import package, class."""
    return {
        "name": name,
        # A distribution name ends with a letter or digit: "my_skill_" is lepton-skill-my-skill.
        "dist": "lepton-skill-" + re.sub(r"_+", "-", name).rstrip("-"),
        "package": f"lepton_skill_{name}",
        "class_name": "".join(part.capitalize() for part in name.split("_")) + "Skill",
    }


def render_skeleton(name: str, description: str) -> dict[str, str]:
    """The skeleton's files: path relative to the package folder -> text."""
    # A printable line in JSON's quotes is a string literal in both Python and TOML.
    values = {**skeleton_names(name), "description": description,
              "description_literal": json.dumps(description, ensure_ascii=False)}
    package = values["package"]
    return {
        "pyproject.toml": PYPROJECT.substitute(values),
        "README.md": README.substitute(values),
        f"{package}/__init__.py": PACKAGE.substitute(values),
        f"tests/test_{name}.py": TESTS.substitute(values),
    }


def check_name(name: str) -> None:
    """A usable name for a new skill: the contract's pattern, not reserved, not installed."""
    from skills import NAME_PATTERN, RESERVED_NAMES, installed_names

    if not NAME_PATTERN.fullmatch(name):
        raise click.BadParameter(f"{name!r} is not a skill name: 2-49 characters of a-z, 0-9 and _, "
                                 "starting with a letter", param_hint="NAME")
    if name in RESERVED_NAMES:
        raise click.BadParameter(f"{name!r} is reserved for the assistant ({', '.join(RESERVED_NAMES)})",
                                 param_hint="NAME")
    if name in installed_names():  # loaded or failing to load: the name is taken either way
        raise click.BadParameter(f"a skill named {name!r} is installed already (see `lepton skills list`)",
                                 param_hint="NAME")


def check_folder(path: Path) -> None:
    """The package folder must not exist yet, or be an empty folder (missing parents are made)."""
    if path.is_dir():
        if any(path.iterdir()):
            raise click.BadParameter(f"{path} is not empty", param_hint="--path")
    elif path.exists() or path.is_symlink():
        raise click.BadParameter(f"{path} is not a folder", param_hint="--path")
    above = next((p for p in path.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise click.BadParameter(f"{above} is not a folder", param_hint="--path")


def write_skeleton(path: Path, files: dict[str, str]) -> None:
    """Write ``files`` into a hidden folder beside ``path``, then rename it to ``path``.

    On failure nothing stays behind: not the hidden folder, nor parent folders made for it."""
    path = path.absolute()
    made = next((p for p in reversed(path.parents) if not p.exists()), None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.parent / f".{path.name}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            for relative, text in files.items():
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            if path.is_dir():
                path.rmdir()  # empty: checked before
            staging.rename(path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


@click.command("new", help="""Write a new skill's plugin package: pyproject.toml with the lepton.skills
entry point, the skill (fixed answers to a few questions, the model for the rest),
a README and tests that pass as written.

NAME is the skill's name (a-z, 0-9 and _, starting with a letter); it must not be
reserved or installed already. The package goes into --path, which must not exist
or be empty (default: ./lepton-skill-NAME).

\b
Example:
  lepton skills new opening_hours --path lepton-skill-opening-hours
  pip install -e lepton-skill-opening-hours
  python -m pytest lepton-skill-opening-hours
""")
@click.argument("name")
@click.option("--path", "path", metavar="DIR", type=click.Path(path_type=Path), default=None,
              help="Folder for the package (must not exist, or be empty).")
@click.option("--description", default=None, help="One line: what the skill helps with (shown to users).")
def new_skill(name: str, path: Path | None, description: str | None) -> None:
    check_name(name)
    names = skeleton_names(name)
    path = path if path is not None else Path(names["dist"])
    check_folder(path)
    if description is None:
        description = f"Answers common questions about {' '.join(filter(None, name.split('_')))}."
    elif not description.strip() or not description.isprintable():
        raise click.BadParameter("must be one line of text", param_hint="--description")
    files = render_skeleton(name, description.strip())
    write_skeleton(path, files)
    click.echo(f"skill {name!r} written to {path}:")
    for relative in files:
        click.echo(f"  {path / relative}")
    click.echo(f"Next: pip install -e {path} && python -m pytest {path}, then `lepton skills list` shows it.")
