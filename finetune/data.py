"""Dataset preparation: read chat data in common formats, check every row, scrub
personal data, drop duplicates, split deterministically and write the prepared
set (``train.jsonl``, ``eval.jsonl`` in OpenAI-messages form, ``stats.json``).

Every row is normalised to a list of ``{"role", "content"}`` messages. A row that
cannot be used is reported with its line number and the reason and skipped (or,
with ``strict``, stops the run). The output folder is built in a staging folder
beside it and renamed into place, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import DatasetError
from .pii import KINDS, scrub

__all__ = [
    "FORMATS",
    "Columns",
    "Row",
    "Problem",
    "read_rows",
    "prepare",
    "read_prepared",
    "dataset_hash",
]

FORMATS = ("auto", "openai", "sharegpt", "alpaca", "csv", "fields")
ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}
_CSV_PAIRS = (("question", "answer"), ("text", "label"), ("prompt", "completion"), ("input", "output"))
#: At most this many problems are kept in stats.json (all are counted).
_MAX_LISTED = 200


@dataclass(frozen=True)
class Columns:
    """The columns (CSV) or fields (JSON records) holding each row's prompt, answer
    and, optionally, system message, for files whose names are not a known pair."""

    prompt: str
    answer: str
    system: str | None = None

    def __post_init__(self) -> None:
        names = [n for n in (self.prompt, self.answer, self.system) if n is not None]
        if any(not n.strip() for n in names):
            raise DatasetError("a column name is empty")
        if len({n.strip().lower() for n in names}) < len(names):
            raise DatasetError(f"the prompt, answer and system columns must differ: {', '.join(names)}")


@dataclass
class Row:
    line: int
    messages: list[dict[str, str]]


@dataclass
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class _Read:
    format: str
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    records: int = 0


# -- reading --------------------------------------------------------------------


def _records_jsonl(text: str) -> Iterator[tuple[int, Any, str | None]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), None
        except json.JSONDecodeError as exc:
            yield number, None, f"not valid JSON ({exc.msg})"


def _records_json_array(text: str) -> Iterator[tuple[int, Any, str | None]]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise DatasetError("the JSON array is not closed (missing ']')")
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"line {exc.lineno}: not valid JSON ({exc.msg})") from None
        yield line, value, None


def _records_json(text: str) -> Iterator[tuple[int, Any, str | None]]:
    return _records_json_array(text) if text.lstrip().startswith("[") else _records_jsonl(text)


def _detect(path: Path, text: str) -> str:
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    for _, value, error in _records_json(text):
        if error is not None or not isinstance(value, dict):
            continue
        if "messages" in value:
            return "openai"
        if "conversations" in value:
            return "sharegpt"
        if "instruction" in value or "output" in value:
            return "alpaca"
        break
    raise DatasetError(
        f"cannot tell the format of {path.name}: expected OpenAI messages JSONL ('messages'), ShareGPT "
        "('conversations'), Alpaca ('instruction'/'output') or a CSV file; pass --format"
    )


def _from_openai(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        raise ValueError("no 'messages' list")
    out = []
    for i, m in enumerate(value["messages"]):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}] is not an object")
        message = {"role": m.get("role"), "content": m.get("content")}
        if "weight" in m:
            message["weight"] = m["weight"]
        out.append(message)
    return out


def _from_sharegpt(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, dict) or not isinstance(value.get("conversations"), list):
        raise ValueError("no 'conversations' list")
    out = []
    if isinstance(value.get("system"), str) and value["system"].strip():
        out.append({"role": "system", "content": value["system"]})
    for i, m in enumerate(value["conversations"]):
        if not isinstance(m, dict):
            raise ValueError(f"conversations[{i}] is not an object")
        who = str(m.get("from", "")).lower()
        if who not in _SHAREGPT_ROLES:
            raise ValueError(f"conversations[{i}].from {m.get('from')!r} is not a known speaker")
        out.append({"role": _SHAREGPT_ROLES[who], "content": m.get("value")})
    return out


def _from_alpaca(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, dict):
        raise ValueError("not an object")
    instruction, extra, output = value.get("instruction"), value.get("input"), value.get("output")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("no 'instruction'")
    if extra is not None and not isinstance(extra, str):
        raise ValueError("'input' is not a string")
    prompt = instruction.strip() + ("\n\n" + extra.strip() if extra and extra.strip() else "")
    out = []
    if isinstance(value.get("system"), str) and value["system"].strip():
        out.append({"role": "system", "content": value["system"]})
    out.append({"role": "user", "content": prompt})
    out.append({"role": "assistant", "content": output})
    return out


def _csv_rows(path: Path, text: str, columns: Columns | None = None) -> Iterator[tuple[int, Any, str | None]]:
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    reader = csv.reader(io.StringIO(text), dialect=dialect)
    try:
        header = next(reader)
    except StopIteration:
        return
    names = [h.strip().lower() for h in header]
    if columns is not None:
        for name in (columns.prompt, columns.answer, columns.system):
            if name is not None and name.strip().lower() not in names:
                raise DatasetError(f"{path.name}: the CSV header has no column {name!r} "
                                   f"(its columns: {', '.join(h.strip() for h in header)})")
        qi, ai = names.index(columns.prompt.strip().lower()), names.index(columns.answer.strip().lower())
        si = names.index(columns.system.strip().lower()) if columns.system is not None else None
    else:
        pair = next(((q, a) for q, a in _CSV_PAIRS if q in names and a in names), None)
        if pair is None:
            wanted = ", ".join(f"{q}/{a}" for q, a in _CSV_PAIRS)
            raise DatasetError(f"{path.name}: the CSV header {header!r} has none of the column pairs {wanted}; "
                               "name the columns with --prompt-column and --answer-column")
        qi, ai = names.index(pair[0]), names.index(pair[1])
        si = names.index("system") if "system" in names else None
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield line, None, f"has {len(row)} columns; the header has {len(names)}"
            continue
        messages = []
        if si is not None and row[si].strip():
            messages.append({"role": "system", "content": row[si]})
        messages += [{"role": "user", "content": row[qi]}, {"role": "assistant", "content": row[ai]}]
        yield line, {"messages": messages}, None


def _fields_converter(columns: Columns):
    """Turns one JSON record into messages by the named fields."""

    def convert(value: Any) -> list[dict[str, str]]:
        if not isinstance(value, dict):
            raise ValueError("not an object")
        out = []
        for name, role in ((columns.system, "system"), (columns.prompt, "user"), (columns.answer, "assistant")):
            if name is None:
                continue
            if name not in value:
                if role == "system":
                    continue
                raise ValueError(f"no field {name!r}")
            content = value[name]
            if not isinstance(content, str):
                raise ValueError(f"field {name!r} is not text")
            if role == "system" and not content.strip():
                continue
            out.append({"role": role, "content": content})
        return out

    return convert


def _check(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The messages, cleaned, or ValueError saying why the row cannot be used."""
    if not messages:
        raise ValueError("no messages")
    cleaned = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ValueError(f"message {i} has role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"message {i} ({role}) has no text")
        if role == "system" and i != 0:
            raise ValueError(f"message {i} is a system message after the first message")
        message = {"role": role, "content": content.strip()}
        # OpenAI's fine-tuning format: an assistant message with weight 0 is
        # context only (e.g. an earlier answer nobody rated), not a target.
        if "weight" in m:
            if role != "assistant" or m["weight"] not in (0, 1):
                raise ValueError(f"message {i} has weight {m['weight']!r}; only assistant messages take 0 or 1")
            if m["weight"] == 0:
                message["weight"] = 0
        cleaned.append(message)
    roles = [m["role"] for m in cleaned]
    if "assistant" not in roles or all(m.get("weight") == 0 for m in cleaned if m["role"] == "assistant"):
        raise ValueError("no assistant turn to learn from")
    if "user" not in roles:
        raise ValueError("no user turn")
    if roles[-1] != "assistant":
        raise ValueError("the last message is not an assistant turn")
    return cleaned


def read_rows(path: Path, format: str = "auto", columns: Columns | None = None) -> _Read:
    """Read and check every row of ``path``; unusable rows become problems.

    With ``columns``, a CSV file's prompt and answer come from those columns and a
    JSON/JSONL file is read as records (format ``fields``) with those fields.
    """
    if format not in FORMATS:
        raise DatasetError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if columns is None and format == "fields":
        raise DatasetError("--format fields needs --prompt-column and --answer-column")
    if columns is not None and format not in ("auto", "csv", "fields"):
        raise DatasetError(f"--prompt-column/--answer-column apply to CSV files and JSON records, "
                           f"not to --format {format}")
    if not path.is_file():
        raise DatasetError(f"{path} is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path.name} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DatasetError(f"{path.name} is empty")
    if format == "auto":
        if columns is not None:
            format = "csv" if path.suffix.lower() in (".csv", ".tsv") else "fields"
        else:
            format = _detect(path, text)
    result = _Read(format=format)
    if format == "csv":
        records = _csv_rows(path, text, columns)
        convert = _from_openai
    elif format == "fields":
        records = _records_json(text)
        convert = _fields_converter(columns)
    else:
        records = _records_json(text)
        convert = {"openai": _from_openai, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca}[format]
    for line, value, error in records:
        result.records += 1
        if error is None:
            try:
                result.rows.append(Row(line, _check(convert(value))))
                continue
            except ValueError as exc:
                error = str(exc)
        result.problems.append(Problem(line, error))
    return result


# -- preparing ------------------------------------------------------------------


def _key(messages: list[dict[str, str]]) -> str:
    """Identity of a row for deduplication: roles and whitespace-normalised text."""
    return json.dumps([[m["role"], " ".join(m["content"].split()).casefold()] for m in messages])


def _split_rank(seed: int, key: str) -> str:
    # Hashing the row itself (not its position) keeps a row on the same side of the
    # split when other rows are added or the file is reordered.
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def dataset_hash(folder: Path) -> str:
    """sha256 over a prepared set's train and eval files."""
    digest = hashlib.sha256()
    for name in ("train.jsonl", "eval.jsonl"):
        digest.update(name.encode() + b"\0")
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def _write_jsonl(path: Path, rows: list[list[dict[str, str]]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for messages in rows:
            fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


def prepare(
    source: Path,
    out: Path,
    *,
    format: str = "auto",
    strict: bool = False,
    eval_fraction: float = 0.1,
    eval_size: int | None = None,
    seed: int = 0,
    system: str | None = None,
    overwrite: bool = False,
    columns: Columns | None = None,
) -> dict[str, Any]:
    """Prepare ``source`` into the folder ``out``; returns the statistics written to stats.json.

    ``system`` is put as the system message of every row that has none: a short
    fixed instruction keeps training sequences short and stops the chat template
    from inserting its own (longer) default system prompt.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise DatasetError(f"--eval-fraction must be between 0 and 1 (exclusive), not {eval_fraction}")
    if eval_size is not None and eval_size < 1:
        raise DatasetError(f"--eval-size must be at least 1, not {eval_size}")
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")

    read = read_rows(Path(source), format, columns)
    if strict and read.problems:
        first = read.problems[0]
        more = f" (and {len(read.problems) - 1} more invalid rows)" if len(read.problems) > 1 else ""
        raise DatasetError(f"{first}{more}; --strict stops on any invalid row")
    if not read.rows:
        if read.problems and all("assistant turn" in p.reason for p in read.problems):
            raise DatasetError(f"{Path(source).name} has no assistant turns: there is nothing to learn from")
        first = f": {read.problems[0]}" if read.problems else ""
        raise DatasetError(f"{Path(source).name} has no usable rows as {read.format}{first}")

    pii: Counter = Counter()
    seen: dict[str, int] = {}
    unique: list[tuple[str, list[dict[str, str]]]] = []
    duplicates = 0
    for row in read.rows:
        messages = [{**m, "content": scrub(m["content"], pii)} for m in row.messages]
        if system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        key = _key(messages)
        if key in seen:
            duplicates += 1
            continue
        seen[key] = row.line
        unique.append((key, messages))

    n = len(unique)
    n_eval = eval_size if eval_size is not None else max(1, round(n * eval_fraction))
    if n_eval >= n:
        raise DatasetError(
            f"an eval set of {n_eval} rows leaves nothing to train on: there are only {n} usable rows "
            "after removing invalid rows and duplicates"
        )
    ranked = sorted(unique, key=lambda item: _split_rank(seed, item[0]))
    eval_rows = [m for _, m in ranked[:n_eval]]
    # Training order is the input order: shuffling is the trainer's (seeded) job.
    eval_keys = {k for k, _ in ranked[:n_eval]}
    train_rows = [m for k, m in unique if k not in eval_keys]

    stats: dict[str, Any] = {
        "source": str(Path(source).resolve()),
        "format": read.format,
        "records": read.records,
        "valid": len(read.rows),
        "invalid": len(read.problems),
        "problems": [{"line": p.line, "reason": p.reason} for p in read.problems[:_MAX_LISTED]],
        "pii": {kind: pii.get(kind, 0) for kind in KINDS},
        "duplicates": duplicates,
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "eval_fraction": eval_fraction if eval_size is None else None,
        "eval_size": eval_size,
        "seed": seed,
        "system": system,
        "columns": dataclasses.asdict(columns) if columns is not None else None,
        "created_at": time.time(),
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        _write_jsonl(staging / "train.jsonl", train_rows)
        _write_jsonl(staging / "eval.jsonl", eval_rows)
        stats["dataset_hash"] = dataset_hash(staging)
        (staging / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
        staging.chmod(0o755)
        _replace_dir(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return stats


def _replace_dir(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing ``target`` is swapped out, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_prepared(folder: Path, split: str) -> list[list[dict[str, str]]]:
    """The rows of a prepared set's ``train`` or ``eval`` split."""
    path = Path(folder) / f"{split}.jsonl"
    if not path.is_file():
        raise DatasetError(f"{folder} is not a prepared data set (no {split}.jsonl); run `lepton finetune prepare` first")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(_check(_from_openai(json.loads(line))))
            except (ValueError, json.JSONDecodeError) as exc:
                raise DatasetError(f"{path}: line {number}: {exc}; prepare the data again") from None
    if not rows:
        raise DatasetError(f"{path} has no rows")
    return rows
