"""The `lepton ingest` and `lepton eval retrieval` commands, invoked through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from retrieval import KnowledgeStore
from assistant.commands.knowledge import ingest, retrieval_eval

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def run(settings, encoder):
    def invoke(command, *args):
        return CliRunner().invoke(command, [str(a) for a in args], obj=settings, catch_exceptions=False)

    return invoke


def test_ingest_files_then_again_then_delete(run, settings, docs):
    result = run(ingest, docs / "handbook.md", docs / "faq.csv", "--collection", "help", "--tenant", "acme",
                 "--metadata-field", "category")
    assert result.exit_code == 0, result.output
    assert "2 file(s) ingested into 'help' (tenant 'acme')" in result.stdout
    assert "warning:" in result.stderr and "faq.csv: 1 row(s) without text skipped" in result.stderr

    again = run(ingest, docs / "handbook.md", "--collection", "help", "--tenant", "acme")
    assert again.exit_code == 0 and "0 added, 0 removed" in again.stdout

    # --delete accepts the path as typed, not only the stored absolute source.
    deleted = run(ingest, "--delete", docs / "handbook.md", "--collection", "help", "--tenant", "acme")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.startswith("removed ")
    assert [Path(s).name for s in KnowledgeStore(settings).sources("help", "acme")] == ["faq.csv"]


def test_ingest_csv_with_named_fields(run, settings, docs):
    result = run(ingest, docs / "products.jsonl", "-c", "products", "--text-field", "description",
                 "--title-field", "name")
    assert result.exit_code == 0, result.output
    titles = {m["title"] for _, _, m in KnowledgeStore(settings).iter_chunks("products")}
    assert titles == {"Aurora desk lamp", "Boreal thermos"}


def test_per_file_problems_are_listed_and_exit_non_zero(run, docs, tmp_path):
    (tmp_path / "junk.txt").write_bytes(b"\x00\xff" * 100)
    result = run(ingest, docs / "shipping.txt", tmp_path / "junk.txt", tmp_path / "nope.md", "-c", "help")
    assert result.exit_code == 1
    assert "skipped: " in result.stderr and "junk.txt: binary data" in result.stderr
    assert "nope.md: no such file or directory" in result.stderr
    assert "1 file(s) ingested" in result.stdout and "2 file(s) skipped" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "help"], "nothing to ingest"),
        (["{docs}/shipping.txt", "-c", "bad name"], "invalid knowledge base name 'bad name'"),
        (["--delete", "x.md", "-c", "never-made"], "knowledge base 'never-made' does not exist"),
        (["{docs}/shipping.txt", "--delete", "x.md", "-c", "help"], "either PATH... to ingest or --delete"),
    ],
)
def test_user_errors_are_one_line_without_traceback(run, docs, args, message):
    result = run(ingest, *[a.replace("{docs}", str(docs)) for a in args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_a_bad_tenant_is_one_line_from_the_lepton_command(docs, tmp_path, capsys, monkeypatch):
    from assistant.cli import main

    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", str(docs / "shipping.txt"), "-c", "help", "--tenant", "a b"])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "invalid tenant name 'a b'" in lines[0]
    assert not (tmp_path / "data" / "chroma").exists()  # nothing written


def test_eval_retrieval_json_last_line(run):
    result = run(retrieval_eval, FIXTURES / "wixqa_tiny.jsonl", "--mode", "hybrid", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["mode"] == "hybrid" and report["questions"] == 3 and report["articles"] == 3
    assert report["recall@5"] == 1.0
    assert set(report["modes"]) == {"hybrid", "dense", "bm25"}
    for figures in report["modes"].values():
        assert {"recall@1", "recall@5", "mrr"} <= set(figures)


def test_eval_retrieval_table_and_missing_file(run):
    result = run(retrieval_eval, FIXTURES / "wixqa_tiny.jsonl")
    assert result.exit_code == 0 and "recall@5" in result.stdout
    missing = run(retrieval_eval, "nowhere.jsonl")
    assert missing.exit_code == 1 and missing.stderr.strip() == "Error: no such file: nowhere.jsonl"
