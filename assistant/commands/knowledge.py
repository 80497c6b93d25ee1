"""``lepton ingest`` (add files to a knowledge base, or remove a source) and
``lepton eval retrieval`` (measure retrieval on WixQA-format questions).
User errors print one ``Error: ...`` line and exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from skills.cli_types import TENANT

from retrieval.errors import RetrievalError
from retrieval.search import MODES

from ..cli_support import pass_settings

__all__ = ["ingest", "retrieval_eval"]


class _UserError(click.ClickException):
    """One line, exit code 1."""


@click.command(
    "ingest",
    help="""Add files to a knowledge base, or remove one source from it.

PATH may be files or directories (walked for .md .txt .html .pdf .csv .jsonl).
Re-ingesting an unchanged file changes nothing; a changed file replaces its old
chunks. CSV/JSONL rows are documents: their text comes from the first of the
fields text, content, body (or --text-field), their title from title (or --title-field).

\b
Examples:
  lepton ingest docs/ --collection help-centre
  lepton ingest faq.csv --collection help-centre --text-field answer --title-field question
  lepton ingest --delete /abs/path/docs/old.md --collection help-centre

Exits 1 when any file could not be ingested (each is listed with the reason).
""",
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--collection", "-c", required=True, help="Knowledge base name, e.g. help-centre.")
@click.option("--tenant", "-t", type=TENANT, default=None, help="Tenant (default: the configured default tenant).")
@click.option("--text-field", default=None, help="CSV/JSONL field holding the text.")
@click.option("--title-field", default=None, help="CSV/JSONL field holding the title.")
@click.option("--metadata-field", "metadata_fields", multiple=True, help="CSV/JSONL field to keep as metadata (repeatable).")
@click.option("--base-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Name sources relative to this folder instead of by absolute path.")
@click.option("--max-file-mb", type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True,
              help="Refuse files larger than this.")
@click.option("--delete", "delete_source", metavar="SOURCE", default=None,
              help="Remove every chunk of SOURCE (as listed in citations) instead of ingesting.")
@pass_settings
def ingest(settings, paths, collection, tenant, text_field, title_field, metadata_fields, base_dir, max_file_mb,
           delete_source) -> None:
    from retrieval.ingest import IngestConfig, ingest_paths
    from retrieval.store import KnowledgeStore

    try:
        store = KnowledgeStore(settings)
        if delete_source is not None:
            if paths:
                raise _UserError("give either PATH... to ingest or --delete SOURCE, not both")
            removed = store.delete_source(collection, delete_source, tenant)
            as_path = Path(delete_source).expanduser().resolve().as_posix()
            if not removed and as_path != delete_source:
                # Sources are absolute paths by default: accept the path as the user types it.
                removed = store.delete_source(collection, as_path, tenant)
            if not removed:
                raise _UserError(f"no chunks of source {delete_source!r} in {collection!r}")
            click.echo(f"removed {removed} chunk(s) of {delete_source} from {collection!r}")
            return
        if not paths:
            raise _UserError("nothing to ingest: give at least one file or directory (or --delete SOURCE)")
        config = IngestConfig(max_file_bytes=int(max_file_mb * 1024 * 1024))
        report = ingest_paths(
            store,
            list(paths),
            collection,
            tenant,
            text_field=text_field,
            title_field=title_field,
            metadata_fields=metadata_fields,
            config=config,
            base_dir=base_dir,
        )
    except RetrievalError as exc:
        raise _UserError(str(exc)) from None
    for problem in report.problems:
        label = "warning" if problem.partial else "skipped"
        click.echo(f"{label}: {problem}", err=True)
    click.echo(report.summary())
    if report.failed:
        raise SystemExit(1)


@click.command(
    "retrieval",
    help="""Measure retrieval on a WixQA-style JSONL file (questions + gold articles).

Ingests the file's articles into a temporary knowledge base, asks every question
and reports recall@1, recall@5 and MRR@10 of the gold articles for each search mode.

\b
Example:
  lepton eval retrieval wixqa_public_rag_sample.jsonl --mode hybrid --json
""",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True,
              help="Mode whose figures are reported at the top level.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@pass_settings
def retrieval_eval(settings, file: Path, mode: str, as_json: bool) -> None:
    from retrieval.evaluate import evaluate_wixqa

    if not file.is_file():
        raise _UserError(f"no such file: {file}")
    # The primary mode first; the others are cheap once the articles are embedded.
    modes = [mode] + [m for m in MODES if m != mode]
    try:
        result = evaluate_wixqa(file, settings, modes)
    except RetrievalError as exc:
        raise _UserError(str(exc)) from None
    figures = result["modes"][mode]
    if as_json:
        click.echo(json.dumps({"mode": mode, **{k: figures[k] for k in ("recall@1", "recall@5", "mrr")}, **result}))
        return
    click.echo(f"{result['questions']} questions, {result['articles']} articles, {result['chunks']} chunks")
    click.echo(f"{'mode':<8} {'recall@1':>9} {'recall@5':>9} {'MRR@10':>7} {'p50 ms':>8}")
    for name, row in result["modes"].items():
        click.echo(f"{name:<8} {row['recall@1']:>9.3f} {row['recall@5']:>9.3f} {row['mrr']:>7.3f} {row['p50_ms']:>8.1f}")
