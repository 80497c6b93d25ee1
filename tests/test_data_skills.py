"""Skills made from data with no code (``lepton skills create``): made, routed to and
answered through a running server without a restart, fine-tuned, and deleted with
everything they own; bad input is one clear line and leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from assistant import Assistant
from assistant.adapters import AdapterRegistry
from assistant.cli import main
from assistant.settings import Settings
from assistant.store import open_store
from retrieval import KnowledgeStore

EXAMPLES = [
    "Can I rent a bike for the weekend?",
    "How much is an electric bike per day?",
    "Do you have child seats for the rental bikes?",
    "What time do I have to bring the rented bike back?",
    "Is a helmet included when I hire a bike?",
    "Can I book a tandem for Saturday?",
    "What happens if the rental bike gets a puncture?",
]

PRICES = """# Bike hire prices

A city bike costs 15 pounds per day and an electric bike costs 35 pounds per day.
Weekend hire runs from Friday 5pm to Monday 10am and costs twice the daily price.
Helmets and locks are included with every hire at no extra cost.
"""

DAMAGE = """# Punctures and damage

If a hired bike gets a puncture, call the shop and we bring a replacement bike within an hour.
Damage caused by an accident is covered up to 100 pounds by the hire deposit.
"""


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        import io

        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The failure is one line starting with Error: (model loading may log before it)."""
    errors = [line for line in err.strip().splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    examples = tmp_path / "bike-examples.txt"
    examples.write_text("# messages the bike hire skill should take\n" + "\n".join(EXAMPLES) + "\n")
    docs = tmp_path / "bike-docs"
    docs.mkdir()
    (docs / "prices.md").write_text(PRICES)
    (docs / "damage.md").write_text(DAMAGE)
    return {"examples": examples, "docs": docs}


def data_skills(data_dir: Path, tenant: str = "default") -> list[dict]:
    settings = Settings(data_dir=data_dir)
    if not settings.db_path.exists():
        return []
    return open_store(settings).data_skills(tenant)


def collections(data_dir: Path, tenant: str = "default") -> list[str]:
    settings = Settings(data_dir=data_dir)
    if not settings.chroma_dir.exists():
        return []
    return KnowledgeStore(settings).list_collections(tenant)


@pytest.mark.parametrize("name, edit, message", [
    ("customer_service", {}, "'customer_service' is the name of an installed skill"),
    ("assistant", {}, "skill name 'assistant' is reserved"),
    ("Bike Hire", {}, "skill name 'Bike Hire' must be 2-49 characters"),
    ("bike_hire", {"examples": EXAMPLES[:3]}, "at least 5 different routing examples; got 3"),
    ("bike_hire", {"knowledge": "missing-folder"}, "no such file or folder:"),
    ("bike_hire", {"knowledge": "empty"}, "empty: no .md, .markdown, .txt"),
    ("bike_hire", {"description": ""}, "the description must be 1-200 characters"),
])
def test_bad_definitions_are_one_line_and_create_nothing(tmp_path, capsys, files, name, edit, message):
    data_dir = tmp_path / "data"
    if "examples" in edit:
        files["examples"].write_text("\n".join(edit["examples"]))
    knowledge = files["docs"]
    if edit.get("knowledge") == "missing-folder":
        knowledge = tmp_path / "nowhere"
    elif edit.get("knowledge") == "empty":
        knowledge = tmp_path / "empty"
        knowledge.mkdir()
        (knowledge / "notes.bin").write_bytes(b"\x00\x01")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "skills", "create", name,
                         "--description", edit.get("description", "Bike hire: prices, bookings, punctures"),
                         "--examples", str(files["examples"]), "--knowledge", str(knowledge))
    assert code == 1
    assert message in error_line(err)
    assert data_skills(data_dir) == []
    assert collections(data_dir) == []


def test_prompt_and_prompt_file_exclude_each_other_and_an_unreadable_examples_file_is_named(tmp_path, capsys, files):
    data_dir = tmp_path / "data"
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Be brief.")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "skills", "create", "bike_hire", "--description", "Bikes",
                       "--examples", str(files["examples"]), "--prompt", "x", "--prompt-file", str(prompt))
    assert code == 2 and "give --prompt or --prompt-file, not both" in err
    code, _, err = run(capsys, "--data-dir", str(data_dir), "skills", "create", "bike_hire", "--description", "Bikes",
                       "--examples", str(tmp_path / "none.txt"))
    assert code == 1 and "cannot read examples file" in error_line(err) and "none.txt" in err
    bad = tmp_path / "examples.jsonl"
    bad.write_text('{"text": "rent a bike"}\n{"message": "no text field"}\n')
    code, _, err = run(capsys, "--data-dir", str(data_dir), "skills", "create", "bike_hire", "--description", "Bikes",
                       "--examples", str(bad))
    assert code == 1 and 'line 2 has no "text" field' in error_line(err)
    assert data_skills(data_dir) == []


def test_a_second_skill_of_the_same_name_is_refused_for_any_tenant(tmp_path, capsys, files):
    data_dir = tmp_path / "data"
    base = ["--data-dir", str(data_dir), "skills", "create", "bike_hire", "--description", "Bike hire",
            "--examples", str(files["examples"])]
    code, out, err = run(capsys, *base, "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"name": "bike_hire", "tenant": "default", "examples": 7,
                                                        "collection": None, "chunks": 0}
    code, _, err = run(capsys, *base)
    assert code == 1 and "a data skill named 'bike_hire' exists already (tenant 'default')" in error_line(err)
    code, _, err = run(capsys, *base, "--tenant", "acme")
    assert code == 1 and "exists already; choose another name" in error_line(err)
    assert [r["name"] for r in data_skills(data_dir)] == ["bike_hire"] and data_skills(data_dir, "acme") == []


def test_delete_asks_first_and_names_what_a_tenant_has(tmp_path, capsys, files, monkeypatch):
    data_dir = tmp_path / "data"
    assert run(capsys, "--data-dir", str(data_dir), "skills", "create", "bike_hire", "--description", "Bike hire",
               "--examples", str(files["examples"]))[0] == 0
    code, _, err = run(capsys, "--data-dir", str(data_dir), "skills", "delete", "bike_hire", stdin="n\n",
                       monkeypatch=monkeypatch)
    assert code == 130 and "Aborted." in err
    assert len(data_skills(data_dir)) == 1
    code, _, err = run(capsys, "--data-dir", str(data_dir), "skills", "delete", "boat_hire", "--yes")
    assert code == 1
    assert error_line(err) == "Error: tenant 'default' has no data skill 'boat_hire' (its data skills: bike_hire)"
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "skills", "delete", "bike_hire", stdin="y\n",
                       monkeypatch=monkeypatch)
    assert code == 0 and "skill 'bike_hire' deleted from tenant 'default'" in out
    assert data_skills(data_dir) == []


@pytest.mark.slow
def test_a_data_skill_is_created_routed_answered_finetuned_and_deleted_on_a_running_server(
        tmp_path, capsys, files, model_path, llm, start_server):
    settings = Settings(data_dir=tmp_path / "data", model=model_path, max_tokens=16, demo_knowledge=False)
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    api = openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)
    question = "How much does it cost to hire an electric bike for a day?"
    cli = ["--data-dir", str(settings.data_dir)]

    def ask(model: str = "assistant", text: str = question):
        reply = api.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content, reply.model_extra["lepton"]

    assert "bike_hire" not in {m.id for m in api.models.list().data}
    assert ask()[1]["skill"] != "bike_hire"

    code, out, err = run(capsys, *cli, "skills", "create", "bike_hire", "--description",
                         "Bike hire: prices, bookings and punctures", "--examples", str(files["examples"]),
                         "--knowledge", str(files["docs"]), "--json")
    assert code == 0, err
    created = json.loads(out.strip().splitlines()[-1])
    assert created["collection"] == "skill-bike-hire" and created["chunks"] >= 2

    # The running server sees it from the next request on: listed, routed to, answering from its documents.
    assert "bike_hire" in {m.id for m in api.models.list().data}
    assert api.models.retrieve("bike_hire").id == "bike_hire"
    text, lepton = ask()
    assert lepton["skill"] == "bike_hire"
    assert "an electric bike costs 35 pounds per day" in text  # quoted from prices.md, not generated
    assert lepton["citations"][0]["source"].endswith("prices.md") and lepton["answer_mode"] == "extractive"
    text, lepton = ask(text="What if I get a puncture on the hired bike?")
    assert lepton["skill"] == "bike_hire" and "replacement bike within an hour" in text
    # The installed skills still answer what is theirs; other tenants never see it.
    assert ask(text="I have crushing chest pain and my left arm is numb")[1]["safety"] == "emergency"
    assert ask(text="suggest a birthday gift for my dad")[1]["skill"] == "recommendation"
    assert "bike_hire" not in assistant.model_names("acme")
    code, out, _ = run(capsys, *cli, "skills", "list")
    assert code == 0 and "bike_hire" in out and "data skill of tenant default" in out

    # An adapter for it through lepton finetune, like any skill's.
    rows = [{"messages": [{"role": "user", "content": f"Bike {i}: how much?"},
                          {"role": "assistant", "content": "A city bike costs 15 pounds per day."}]} for i in range(8)]
    source = tmp_path / "bike-sft.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run(capsys, *cli, "finetune", "prepare", str(source), "--out", str(tmp_path / "prepared"),
               "--eval-size", "2")[0] == 0
    code, out, err = run(capsys, *cli, "finetune", "train", "--skill", "bike_hire", "--data",
                         str(tmp_path / "prepared"), "--max-steps", "1", "--name", "bike-v1", "--json")
    assert code == 0, err
    assert [r.name for r in AdapterRegistry(settings.adapters_dir).list() if r.skill == "bike_hire"] == ["bike-v1"]

    code, out, err = run(capsys, *cli, "skills", "delete", "bike_hire", "--yes")
    assert code == 0, err
    assert f"({created['chunks']} chunk(s) and 1 adapter(s) removed)" in out
    assert "bike_hire" not in {m.id for m in api.models.list().data}
    assert ask()[1]["skill"] != "bike_hire"
    with pytest.raises(openai.NotFoundError, match="model 'bike_hire' does not exist"):
        ask(model="bike_hire")
    assert collections(settings.data_dir) == [] or "skill-bike-hire" not in collections(settings.data_dir)
    assert AdapterRegistry(settings.adapters_dir).list() == []
    assistant.close()


@pytest.mark.slow
def test_the_admin_api_creates_lists_and_deletes_a_data_skill(tmp_path, model_path, llm, start_server):
    import httpx

    settings = Settings(data_dir=tmp_path / "data", model=model_path, max_tokens=16, demo_knowledge=False,
                        admin_access="loopback")
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    admin = httpx.Client(base_url=live.base_url + "/admin", timeout=120)
    api = openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)
    form = {"name": "bike_hire", "description": "Bike hire: prices, bookings and punctures",
            "examples": "\n".join(EXAMPLES)}
    uploads = [("files", ("prices.md", PRICES.encode())), ("files", ("damage.md", DAMAGE.encode()))]

    # What the caller sees for bad input: an OpenAI-shaped error, and nothing made.
    response = admin.post("/skills", data={**form, "examples": "\n".join(EXAMPLES[:2])}, files=uploads)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "a skill needs at least 5 different routing examples; got 2"
    response = admin.post("/skills", data={**form, "name": "customer_service"}, files=uploads)
    assert response.status_code == 409 and response.json()["error"]["code"] == "skill_exists"
    assert admin.get("/skills").json() == {"tenant": "default", "skills": []}
    assert "skill-bike-hire" not in [c["name"] for c in admin.get("/collections").json()["collections"]]

    response = admin.post("/skills", data=form, files=uploads)
    assert response.status_code == 200, response.text
    assert response.json()["collection"] == "skill-bike-hire" and response.json()["chunks"] >= 2
    assert [s["name"] for s in admin.get("/skills").json()["skills"]] == ["bike_hire"]
    assert admin.post("/skills", data=form, files=uploads).status_code == 409

    reply = api.chat.completions.create(model="assistant", messages=[
        {"role": "user", "content": "What if I get a puncture on the hired bike?"}])
    lepton = reply.model_extra["lepton"]
    assert lepton["skill"] == "bike_hire" and "replacement bike within an hour" in reply.choices[0].message.content
    assert lepton["citations"][0]["source"] == "damage.md"  # named as uploaded, not by a temporary path

    response = admin.delete("/skills/bike_hire")
    assert response.status_code == 200 and response.json()["removed_chunks"] >= 2
    response = admin.delete("/skills/bike_hire")
    assert response.status_code == 404 and "has no data skill 'bike_hire'" in response.json()["error"]["message"]
    assert "bike_hire" not in {m.id for m in api.models.list().data}
    assistant.close()


def test_a_turn_accepted_for_a_data_skill_is_answered_by_it_even_if_it_is_deleted_meanwhile(
        tmp_path, model_path, llm):
    """The view a turn was checked against is the one it runs on: deleting the skill
    between accepting the request and running it does not fail the turn half-way."""
    from assistant.tenant_skills import create_data_skill, delete_data_skill

    settings = Settings(data_dir=tmp_path / "data", model=model_path, max_tokens=8, demo_knowledge=False)
    assistant = Assistant.from_settings(settings, llm=llm)
    try:
        create_data_skill(settings, assistant.store, "default", "bike_hire",
                          description="Bike hire: prices, bookings and punctures", examples=EXAMPLES,
                          installed=assistant.skills_of("default"))
        request = assistant.start_turn([{"role": "user", "content": "Can I hire a tandem?"}], model="bike_hire")
        delete_data_skill(settings, assistant.store, "default", "bike_hire")
        result = assistant.run_turn(request)
        assert result.skill == "bike_hire" and result.reply.strip()
        # The next request sees the deletion: an OpenAI-style unknown-model error.
        with pytest.raises(Exception, match="model 'bike_hire' does not exist"):
            assistant.start_turn([{"role": "user", "content": "Can I hire a tandem?"}], model="bike_hire")
    finally:
        assistant.close()
