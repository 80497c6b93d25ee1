"""The plugin from outside the core: installed, listed, its commands train and ingest, bad input is one line."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from conftest import TRAIN, VALID, ago, last_json, lepton, tenant_dir
from lepton_finance_news.feed import HeadlineStore
from lepton_finance_news.model import ModelStore


def test_the_plugin_is_an_installed_distribution_and_listed(tmp_path):
    (ep,) = [e for e in entry_points(group="lepton.skills") if e.name == "finance_news"]
    assert ep.dist is not None and ep.dist.name == "lepton-finance-news"
    result = lepton(tmp_path / "d", "skills", "list", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["skills"]["finance_news"]
    assert info["commands"] == "lepton finnews"
    assert info["actions"] == ["POST /v1/skills/finance_news/sentiment", "POST /v1/skills/finance_news/classify"]
    assert info["examples"] >= 30
    assert "finance_news" not in json.loads(result.stdout)["failed"]
    plain = lepton(tmp_path / "d", "skills", "list")
    assert "finance_news" in plain.stdout and "lepton finnews" in plain.stdout


def test_train_reports_accuracy_and_macro_f1_as_json(trained):
    data_dir, report = trained
    assert report["evaluated_on"] == VALID.name and report["rows"] == 120 and report["train_rows"] == 300
    assert 0.55 <= report["accuracy"] <= 1 and 0.3 <= report["macro_f1"] <= 1
    assert set(report["f1"]) == {"bearish", "bullish", "neutral"}
    store = ModelStore(tenant_dir(data_dir))
    assert store.active_version() == report["version"]
    card = store.cards()[-1]
    assert card["method"] == "linear" and card["metrics"]["accuracy"] == report["accuracy"]
    assert card["details"]["linear"]["C"] in (0.3, 1.0)  # chosen by cross-validation on TRAIN
    assert not list((tenant_dir(data_dir) / "models").glob(".tmp-*"))


def test_train_without_valid_reports_cross_validated_figures(tmp_path):
    result = lepton(tmp_path / "d", "finnews", "train", str(TRAIN), "--method", "linear", "--tenant", "acme",
                    "--json")
    assert result.exit_code == 0, result.output
    report = last_json(result.stdout)
    assert report["evaluated_on"] == "cross-validation on the training file" and report["rows"] == 300
    assert 0 < report["macro_f1"] <= report["accuracy"] + 0.2
    assert ModelStore(tenant_dir(tmp_path / "d", "acme")).active_version() == report["version"]
    assert not tenant_dir(tmp_path / "d").exists()  # per tenant: the default tenant got nothing


@pytest.mark.slow
def test_fine_tuning_trains_saves_and_reloads(tmp_path):
    """One epoch on the slice: the fine-tuned encoder is saved beside its card and reloads to the same answers."""
    result = lepton(tmp_path / "d", "finnews", "train", str(TRAIN), "--valid", str(VALID), "--epochs", "1", "--json")
    assert result.exit_code == 0, result.output
    report = last_json(result.stdout)
    assert report["method"] == "finetune" and 0 <= report["accuracy"] <= 1 and 0 <= report["macro_f1"] <= 1
    folder = tenant_dir(tmp_path / "d") / "models" / report["version"]
    card = json.loads((folder / "card.json").read_text())
    assert (folder / "encoder" / "model.safetensors").is_file() and (folder / "head.pt").is_file()
    assert card["details"]["finetune"]["best_epoch"] == 1
    assert card["details"]["blend"]["weight"] in (0.0, 0.25, 0.5)
    headlines = ["Shares plunge after profit warning", "Stock soars to record high on strong earnings"]
    first = ModelStore(tenant_dir(tmp_path / "d")).active().predict(headlines)
    again = ModelStore(tenant_dir(tmp_path / "d")).active().predict(headlines)
    assert [label for label, _ in first] == [label for label, _ in again]
    assert all(label in ("bearish", "bullish", "neutral") and 0 < conf <= 1 for label, conf in first)


def _bad_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("text,label\n")
    (tmp_path / "columns.csv").write_text("headline_text,score\nStocks rally,1\n")
    (tmp_path / "labels.csv").write_text("text,label\nStocks rally,up\n")
    (tmp_path / "few.csv").write_text("text,label\n" + "".join(f"Stocks move {i},{i % 3}\n" for i in range(10)))
    return {
        "missing file": ([str(tmp_path / "nope.csv")], "no such file"),
        "empty file": ([str(tmp_path / "empty.csv")], "empty file"),
        "header only": ([str(tmp_path / "header.csv")], "no rows"),
        "wrong columns": ([str(tmp_path / "columns.csv")], "needs columns text and label"),
        "bad label": ([str(tmp_path / "labels.csv")], "is not 0, 1, 2"),
        "too few rows": ([str(tmp_path / "few.csv")], "at least 30"),
        "missing valid file": ([str(TRAIN), "--valid", str(tmp_path / "nope.csv")], "no such file"),
        "wrong valid columns": ([str(TRAIN), "--valid", str(tmp_path / "columns.csv")], "needs columns"),
    }


@pytest.mark.parametrize("case", ["missing file", "empty file", "header only", "wrong columns", "bad label",
                                  "too few rows", "missing valid file", "wrong valid columns"])
def test_bad_training_input_is_one_line_exit_1_and_writes_nothing(tmp_path, case):
    args, message = _bad_files(tmp_path)[case]
    result = lepton(tmp_path / "d", "finnews", "train", *args, "--json")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert result.stdout == ""
    assert not tenant_dir(tmp_path / "d").exists()


def _feed(path, rows):
    if path.suffix == ".csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["time", "headline", "source"])
            writer.writerows([[r["time"], r["headline"], r["source"]] for r in rows])
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


FEED = [
    {"time": ago(days=1), "headline": "Tesla shares slump as deliveries miss forecasts", "source": "Wire"},
    {"time": ago(days=2), "headline": "Tesla stock jumps after record quarter", "source": "Daily"},
    {"time": ago(days=3), "headline": "Apple unveils new product event date", "source": "Wire"},
]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_ingest_classifies_and_stores_a_feed_once(data_dir, tmp_path, suffix):
    feed = tmp_path / f"feed{suffix}"
    _feed(feed, FEED)
    result = lepton(data_dir, "finnews", "ingest", str(feed), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["read"] == 3 and report["added"] == 3 and sum(report["counts"].values()) == 3
    again = json.loads(lepton(data_dir, "finnews", "ingest", str(feed), "--json").stdout)
    assert again["added"] == 0 and again["skipped"] == 3
    assert HeadlineStore(tenant_dir(data_dir)).count() == 3
    mood = lepton(data_dir, "finnews", "mood", "Tesla", "--json")
    assert mood.exit_code == 0, mood.output
    assert json.loads(mood.stdout)["window"]["total"] == 2


def test_ingest_without_a_model_or_with_a_bad_feed_is_one_line_and_stores_nothing(data_dir, tmp_path):
    good = tmp_path / "feed.csv"
    _feed(good, FEED)
    no_model = lepton(data_dir, "finnews", "ingest", str(good), "--tenant", "other")
    assert no_model.exit_code == 1 and "train one with `lepton finnews train" in no_model.stderr
    assert len(no_model.stderr.strip().splitlines()) == 1
    (tmp_path / "bad.csv").write_text("time,headline,source\nyesterday,Stocks rally,Wire\n")
    (tmp_path / "cols.csv").write_text("date,title\n2026-01-01,Stocks rally\n")
    (tmp_path / "bad.jsonl").write_text('{"time": "2026-01-01", "headline": "ok", "source": "a"}\nnot json\n')
    (tmp_path / "empty.csv").write_text("")
    for name, message in [("bad.csv", "bad.csv:2: time 'yesterday'"), ("cols.csv", "missing time, headline"),
                          ("bad.jsonl", "bad.jsonl:2: not a JSON object"), ("empty.csv", "empty file"),
                          ("missing.csv", "no such file")]:
        result = lepton(data_dir, "finnews", "ingest", str(tmp_path / name))
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], (name, result.stderr)
    assert HeadlineStore(tenant_dir(data_dir)).count() == 0
