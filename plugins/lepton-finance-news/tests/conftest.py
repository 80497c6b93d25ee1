"""Shared fixtures: a data directory whose default tenant has a model trained once per session
on the bundled slice, through the real ``lepton`` CLI."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli

DATA = Path(__file__).parent / "data"
TRAIN = DATA / "train_slice.csv"
VALID = DATA / "valid_slice.csv"


def lepton(data_dir: Path, *args: str):
    """Run ``lepton --data-dir DATA_DIR ARGS...`` in-process; stdout and stderr apart."""
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def tenant_dir(data_dir: Path, tenant: str = "default") -> Path:
    return data_dir / "skills" / "finance_news" / "tenants" / tenant


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """A data directory with the default tenant's linear model (trained once), and the train report."""
    data_dir = tmp_path_factory.mktemp("finnews") / "data"
    result = lepton(data_dir, "finnews", "train", str(TRAIN), "--valid", str(VALID), "--method", "linear", "--json")
    assert result.exit_code == 0, result.output
    return data_dir, last_json(result.stdout)


@pytest.fixture
def data_dir(trained, tmp_path) -> Path:
    """A copy of the trained data directory for one test to write to."""
    copy = tmp_path / "data"
    shutil.copytree(trained[0], copy)
    return copy


def ago(**delta: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).isoformat(timespec="seconds")
