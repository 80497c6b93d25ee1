"""The customer-service intent classifier and its two CLI commands, on a small CSV."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from assistant import Settings
from assistant.cli_support import CliState
from skills import load_skills
from skills.customer_service.intents import (
    IntentClassifier,
    IntentDataError,
    intents_path,
    load_intent_csv,
    train_intents,
)

ROWS = {
    "card_arrival": [
        "my new card still hasn't arrived", "when will my card be delivered", "I am still waiting for my card",
        "the card you sent never came", "how long does card delivery take", "is my card in the post yet",
    ],
    "lost_card": [
        "I lost my card", "my card was stolen yesterday", "I can't find my card anywhere",
        "someone took my wallet with my card", "please block my lost card", "my card is missing",
    ],
    "refund": [
        "where is my refund", "the shop refunded me but I see nothing", "how long do refunds take",
        "my refund has not shown up", "I was promised a refund", "refund still missing from my account",
    ],
}
TEST_ROWS = [
    ("has my card been delivered yet", "card_arrival"),
    ("my card got stolen", "lost_card"),
    ("the refund is not in my account", "refund"),
]


def write_csv(path, rows, label_column="label"):
    lines = [f"text,{label_column}"] + [f'"{text}",{label}' for text, label in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def train_csv(tmp_path):
    rows = [(text, label) for label, texts in ROWS.items() for text in texts]
    return write_csv(tmp_path / "train.csv", rows)


@pytest.fixture
def test_csv(tmp_path):
    return write_csv(tmp_path / "test.csv", TEST_ROWS, label_column="category")


def test_load_reads_label_or_category_and_rejects_bad_files(train_csv, test_csv, tmp_path):
    texts, labels = load_intent_csv(train_csv)
    assert len(texts) == 18 and set(labels) == set(ROWS)
    assert load_intent_csv(test_csv)[1] == [label for _, label in TEST_ROWS]
    bad = tmp_path / "bad.csv"
    bad.write_text("message,label\nhello,x\n")
    with pytest.raises(IntentDataError, match="'text' column"):
        load_intent_csv(bad)
    with pytest.raises(IntentDataError, match="no such file"):
        load_intent_csv(tmp_path / "missing.csv")


def test_training_cross_validates_and_round_trips(train_csv, test_csv, tmp_path):
    classifier = train_intents(*load_intent_csv(train_csv), grid=(0.3, 1.0), weights=(0.0, 1.0), folds=3)
    assert classifier.labels == sorted(ROWS)
    assert classifier.metadata["cv_folds"] == 3
    assert set(classifier.metadata["cv_accuracy"]) == {
        "C=0.3,weight=0.0", "C=1.0,weight=0.0", "C=0.3,weight=1.0", "C=1.0,weight=1.0"
    }
    assert classifier.metadata["C"] in (0.3, 1.0) and classifier.metadata["embedding_weight"] in (0.0, 1.0)
    assert classifier.accuracy(*load_intent_csv(test_csv)) == 1.0
    path = classifier.save(intents_path(tmp_path / "acme"))
    assert path == tmp_path / "acme" / "intents.pkl"
    again = IntentClassifier.load(path)
    assert again.labels == classifier.labels and again.metadata == classifier.metadata
    assert again.predict(["my card never arrived"]) == ["card_arrival"]


def test_tfidf_only_and_too_few_examples_to_cross_validate():
    classifier = train_intents(["lost my card", "card stolen", "refund please", "where is my refund"],
                               ["lost_card", "lost_card", "refund", "refund"], weights=(0.0,), folds=5)
    assert classifier.metadata["cv_folds"] == 2 and classifier.metadata["embedding_weight"] == 0.0
    assert "MiniLM" not in classifier.metadata["model"]


def test_a_tenant_name_no_other_route_accepts_is_refused_before_training(train_csv, tmp_path):
    result = run(["train-intents", "--data", str(train_csv), "--tenant", "Acme Corp"], Settings(data_dir=tmp_path / "d"))
    assert result.exit_code == 2 and "invalid tenant name 'Acme Corp'" in result.output
    assert not (tmp_path / "d" / "skills").exists()


def test_one_label_is_refused():
    with pytest.raises(IntentDataError, match="at least 2"):
        train_intents(["a", "b", "c"], ["x", "x", "x"])


def run(args, settings):
    """`lepton customer-service ARGS`: the skill's own command group, as the CLI mounts it."""
    group = load_skills(["customer_service"]).skills["customer_service"].commands()
    return CliRunner().invoke(group, args, obj=CliState(settings))


def test_train_intents_command_saves_in_the_skills_tenant_folder(train_csv, tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    result = run(["train-intents", "--data", str(train_csv), "--tenant", "acme", "--json"], settings)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    saved = tmp_path / "data" / "skills" / "customer_service" / "tenants" / "acme" / "intents.pkl"
    assert record["path"] == str(saved) and saved.is_file()
    assert record["examples"] == 18 and record["labels"] == 3
    assert IntentClassifier.load(saved).predict(["I lost my card"]) == ["lost_card"]


def test_eval_intents_command_reports_accuracy_last(train_csv, test_csv, tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    result = run(["eval-intents", "--train", str(train_csv), "--test", str(test_csv), "--json"], settings)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["accuracy"] == 1.0 and report["test_examples"] == 3
    assert not (tmp_path / "data").exists()  # evaluation saves nothing


def test_commands_fail_with_one_line_for_a_bad_file(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    result = run(["train-intents", "--data", str(tmp_path / "nope.csv")], settings)
    assert result.exit_code == 1
    assert "no such file" in result.output and "Traceback" not in result.output
