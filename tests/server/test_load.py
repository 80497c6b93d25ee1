"""The load test (benchmarks/load_test.py), small, on both record stores: one worker on
the data directory's SQLite file, and two workers of `lepton serve --workers 2` on one
PostgreSQL database. What an integrator would see: every turn answered, no 5xx, and
every conversation read back holds exactly its own turns, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LOAD_TEST = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"


@pytest.mark.parametrize("store, workers", [("sqlite", 1), ("postgresql", 2)])
def test_concurrent_conversations_are_all_answered_and_stored_intact(request, model_path, store, workers):
    command = [sys.executable, str(LOAD_TEST), "--conversations", "8", "--turns", "3", "--max-tokens", "2",
               "--workers", str(workers), "--json"]
    if store == "postgresql":
        command += ["--database-url", request.getfixturevalue("postgres_url")]
    done = subprocess.run(command, env={**os.environ, "LEPTON_MODEL": model_path}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-2])
    assert result["workers"] == workers
    assert result["answered_turns"] == 24 and result["turns_not_answered"] == 0, result
    assert result["statuses"] == {"200": 24}, result
    assert result["corrupted_conversations"] == 0, result["corruption_examples"]
    assert result["tracebacks_in_server_log"] == 0
