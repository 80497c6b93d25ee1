"""The `lepton` command as a user runs it: a real process, real model, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def lepton(*args, data_dir, stdin=None, timeout=300, **env):
    full_env = {**os.environ, "LEPTON_DATA_DIR": str(data_dir), **env}
    return subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_commands(tmp_path):
    result = lepton("--help", data_dir=tmp_path)
    assert result.returncode == 0
    for command in ("serve", "chat", "skills", "models", "eval", "ingest", "keys", "finetune", "audit",
                    "customer-service"):  # the last one is the customer-service skill's own group
        assert f"  {command} " in result.stdout


def test_models_prepare_converts_once_into_the_data_dir(tmp_path):
    first = lepton("models", "prepare", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "models" / "SmolLM2-135M-Instruct"
    assert first.stdout.strip() == str(folder)
    assert "one-time conversion" in first.stderr
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".convert-")]
    again = lepton("models", "prepare", data_dir=tmp_path)
    assert again.returncode == 0 and "one-time conversion" not in again.stderr


def test_chat_in_the_terminal_keeps_the_conversation(tmp_path, model_path):
    result = lepton("chat", "--max-tokens", "6", data_dir=tmp_path,
                    stdin="I want to return a jumper\nAnd get my money back\n/quit\n", LEPTON_MODEL=model_path)
    assert result.returncode == 0, result.stderr
    answers = [line for line in result.stdout.splitlines() if line.startswith("assistant> ")]
    assert len(answers) == 2
    assert result.stdout.count("[customer_service]") == 2
    db = tmp_path / "lepton.sqlite3"
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), MAX(turns) FROM conversations").fetchone() == (1, 2)


def test_chat_against_a_running_server(live, tmp_path):
    result = lepton("chat", "--url", live.base_url + "/v1", "--max-tokens", "5", data_dir=tmp_path,
                    stdin="my card payment was declined\nwhy?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("assistant> ") == 2
    assert "[customer_service]" in result.stdout


@pytest.mark.parametrize("args,env,message", [
    (["eval", "routing", "missing.jsonl"], {}, "No such file"),
    (["chat", "--url", "http://127.0.0.1:9/v1"], {}, "cannot reach"),
    (["skills", "list"], {"LEPTON_ROUTER_THRESHOLD": "5"}, "router_threshold"),
    (["serve", "--port", "70000"], {}, "port"),
    (["serve", "--backend", "openai"], {}, "openai_base_url"),
    (["serve", "--workers", "2"], {}, "needs a Chroma server the workers share: set LEPTON_CHROMA_URL"),
    (["serve", "--workers", "0"], {}, "--workers"),
    (["nonsense"], {}, "No such command"),
])
def test_user_errors_print_one_line_and_exit_non_zero(tmp_path, args, env, message):
    result = lepton(*args, data_dir=tmp_path, stdin="hello\n", **env)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert any(line.startswith("Error:") and message in line for line in error_lines), result.stderr


def test_bad_routing_file_names_the_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"text": "hi", "skill": "customer_service"}) + "\n{oops\n")
    result = lepton("eval", "routing", str(data), data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {data}:2: not valid JSON"


def test_eval_routing_scores_dialogues_turn_by_turn_with_the_conversations_skill(tmp_path):
    data = tmp_path / "dialogues.jsonl"
    data.write_text(json.dumps({"turns": [{"text": "I have had a fever since yesterday", "skill": "medical_triage"},
                                          {"text": "It is 39.5 now", "skill": "medical_triage"},
                                          {"text": "no rash", "skill": "medical_triage"}]}) + "\n"
                    + json.dumps({"text": "tell me a joke", "skill": "out_of_scope"}) + "\n")
    routed = lepton("eval", "routing", str(data), "--tenant", "nobody", "--json", data_dir=tmp_path)
    assert routed.returncode == 0, routed.stderr
    report = json.loads(routed.stdout.strip().splitlines()[-1])
    assert (report["n"], report["dialogues"]) == (4, 2)
    assert report["accuracy"] == 1.0 and report["followup_accuracy"] == 1.0
    assert report["knowledge"] == {"tenant": "nobody", "lookups": report["knowledge"]["lookups"]}
    alone = lepton("eval", "routing", str(data), "--no-context", "--no-knowledge", "--json", data_dir=tmp_path)
    assert json.loads(alone.stdout.strip().splitlines()[-1])["followup_accuracy"] < 1.0, \
        "on its own, 'It is 39.5 now' is out of scope"
    bad = tmp_path / "bad_dialogue.jsonl"
    bad.write_text(json.dumps({"turns": [{"text": "hi"}]}) + "\n")
    refused = lepton("eval", "routing", str(bad), data_dir=tmp_path)
    assert refused.returncode == 1 and f"{bad}:1: expected" in refused.stderr


def test_intent_commands_are_on_the_lepton_command(tmp_path):
    from tests.skills.test_intents import ROWS, TEST_ROWS

    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for label, ts in ROWS.items() for t in ts))
    test.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in TEST_ROWS))
    evaluated = lepton("customer-service", "eval-intents", "--train", str(train), "--test", str(test), "--json", data_dir=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0.0 <= json.loads(evaluated.stdout.strip().splitlines()[-1])["accuracy"] <= 1.0
    trained = lepton("customer-service", "train-intents", "--data", str(train), data_dir=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "skills" / "customer_service" / "tenants" / "default" / "intents.pkl").is_file(), \
        "the classifier is saved in the skill's folder of the data dir"
    missing = lepton("customer-service", "train-intents", "--data", "nope.csv", data_dir=tmp_path)
    assert missing.returncode != 0 and missing.stderr.strip().startswith("Error:")


def test_lepton_serve_starts_the_whole_product(tmp_path, model_path):
    """What `bash scripts/serve.sh` ends in: a real `lepton serve` process with the demo
    page, the widget, the demo help centre and the API, stopped cleanly by SIGTERM."""
    import signal

    import httpx
    import openai

    from tests.conftest import free_port, wait_until_serving

    port = free_port()
    env = {**os.environ, "LEPTON_DATA_DIR": str(tmp_path), "LEPTON_MODEL": model_path}
    log = tmp_path / "serve.err"  # a file, read while the server runs (a pipe could fill up)
    log_file = log.open("w")
    process = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=log_file, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base + "/healthz", log)
        page = httpx.get(base + "/").text
        assert "/widget.js" in page and "data-key=" in page
        api = openai.OpenAI(base_url=base + "/v1", api_key="unused")
        answer = api.chat.completions.create(
            model="customer_service", max_tokens=8,
            messages=[{"role": "user", "content": "How do I connect a custom domain to my Wix site?"}])
        assert answer.model_extra["lepton"]["citations"], "the demo help centre grounds the answer"
        # The demo tenant's credit model, trained at this first start, takes an application.
        loan = api.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "Can I borrow 5000 pounds to buy a car?"}])
        assert loan.model_extra["lepton"]["skill"] == "credit_scoring"
        assert "I need 12 details" in loan.choices[0].message.content
        # The admin token is printed once at this first start and opens the admin routes.
        assert httpx.get(base + "/admin/collections").status_code == 401
        line = next(line for line in log.read_text().splitlines() if "Admin token" in line)
        token = line.rsplit(" ", 1)[-1]
        listed = httpx.get(base + "/admin/collections", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200 and "help_centre" in listed.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        log_file.close()
    err = log.read_text()
    # uvicorn shuts down gracefully, then re-raises the signal it caught, as servers should.
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    assert "Loading the demo help centre" in err
    assert "Training the demo credit model" in err
    # Logs are JSON lines with a timestamp; the access log names each request with its id.
    access = [json.loads(line) for line in err.splitlines() if line.startswith("{") and '"lepton.access"' in line]
    assert any(entry["route"] == "/v1/chat/completions" and entry["status"] == 200 for entry in access)
    assert all(entry["time"].endswith("Z") and entry["request_id"] for entry in access)
