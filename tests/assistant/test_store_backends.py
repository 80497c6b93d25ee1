"""The records store on both engines: SQLite under the data directory and a real
PostgreSQL server on loopback (tests/postgres.py). The same store calls give the same
records on each; a unit commits records and conversation state together or not at
all; the schema is created from nothing and migrated from the previous version; two
assistants ("workers") on one PostgreSQL share conversations and skill state; workers
on one database share the rate limits' buckets; and
`lepton db migrate-from-sqlite` copies a SQLite data directory over, verifiably."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from assistant import Assistant, Settings
from assistant.database import MIGRATIONS, migrate, open_database, schema_version
from assistant.store import open_store
from skills import LoadedSkills
from tests.assistant.test_turns import Counter, ask, skill
from tests.standins import InstantModel

NEWEST = MIGRATIONS[-1].version


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request, tmp_path) -> Settings:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return Settings(data_dir=tmp_path / "data", database_url=url)


@pytest.fixture
def store(store_settings):
    opened = open_store(store_settings)
    yield opened
    opened.close()


def test_the_same_calls_give_the_same_records_on_both_engines(store):
    store.record_turn("acme", "c1", "customer_service", answer_index=1, prompt_system="sys 1", digest="d1")
    store.record_turn("acme", "c1", "medical_triage", answer_index=1, prompt_system="sys 2", digest="d2")
    store.record_turn("acme", "c2", "customer_service", digest="d3", owner="key-1")
    assert store.turn_count("acme", "c1") == 2 and store.last_skill("acme", "c1") == "medical_triage"
    assert store.answer_prompt("acme", "c1", 1) == "sys 2"  # replaced, not duplicated
    # Continuation matches the owner exactly, a missing owner included.
    assert store.continuation("acme", "d2") == "c1" and store.continuation("acme", "d2", "key-1") is None
    assert store.continuation("acme", "d3", "key-1") == "c2" and store.continuation("acme", "d3") is None
    assert store.conversation_exists("acme", "c2", owner="key-1") and not store.conversation_exists("acme", "c2", None)

    first = store.add_feedback("acme", "c1", 1, 1, None)
    assert store.add_feedback("acme", "c1", 1, -1, "Say sorry first.") == first  # one rating per message
    assert [(f["rating"], f["correction"]) for f in store.feedback("acme")] == [(-1, "Say sorry first.")]

    # Opened and released once each, whichever worker asks first (each sends the webhook once).
    assert store.open_handoff("acme", "c1", "asked for a person") and not store.open_handoff("acme", "c1", "angry")
    assert store.handoff("acme", "c1")["reason"] == "asked for a person"
    assert store.release_handoff("acme", "c1") and not store.release_handoff("acme", "c1")
    assert store.handoffs("acme", state="released")[0]["reason"] == "asked for a person"

    store.add_audit("acme", "credit_scoring", "decision", {"approved": False}, inputs={"income": 1200.5},
                    version="scorecard-3", conversation_id="c1")
    assert [(e["outcome"], e["inputs"]) for e in store.audit_entries("acme")] == [({"approved": False},
                                                                                  {"income": 1200.5})]

    assert store.set_server_secret_hash("admin", "h1", replace=False)
    assert not store.set_server_secret_hash("admin", "h2", replace=False)
    assert store.server_secret_hash("admin") == "h1"
    assert store.set_server_secret_hash("admin", "h3", replace=True) and store.server_secret_hash("admin") == "h3"
    assert store.set_identity_secret("acme", "s1", replace=False) == "s1"
    assert store.set_identity_secret("acme", "s2", replace=False) == "s1"
    assert store.set_identity_secret("acme", "s3", replace=True) == "s3"

    store.add_api_key("k1", "hash-1", "lk_…1", "acme", ["customer_service"], False, "shop", max_tokens=500)
    assert store.api_key_by_hash("hash-1")["max_tokens"] == 500 and store.any_api_key()
    assert store.revoke_api_key("k1") and store.api_key_by_hash("hash-1") is None
    store.add_widget_key("pk_1", "acme", ["https://shop.example"], [], label="site")
    assert store.widget_key("pk_1")["origins"] == ["https://shop.example"]

    store.add_data_skill("acme", "returns", description="Returns.", examples=["a", "b"], prompt="Be brief.",
                         collection=None)
    with pytest.raises(ValueError, match="already has a skill named 'returns'"):
        store.add_data_skill("acme", "returns", description="Again.", examples=[], prompt="", collection=None)
    assert store.delete_data_skill("acme", "returns") and store.data_skill_revision("acme") == 2
    assert store.ping()


def test_a_unit_commits_records_and_conversation_state_together_or_not_at_all(store_settings, store):
    saver = store.checkpointer()
    config = {"configurable": {"thread_id": "acme:c1", "checkpoint_ns": ""}}
    checkpoint = {"v": 1, "id": "1f0c0000-0000-6000-8000-000000000001", "ts": "2026-12-04T00:00:00+00:00",
                  "channel_values": {"count": 1}, "channel_versions": {"count": 1}, "versions_seen": {}}
    with pytest.raises(RuntimeError, match="mid-turn"):
        with store.unit():
            store.record_turn("acme", "c1", "counter")
            saver.put(config, checkpoint, {"step": 1}, {"count": 1})
            raise RuntimeError("mid-turn failure")
    assert store.turn_count("acme", "c1") == 0 and saver.get_tuple(config) is None
    with store.unit():
        store.record_turn("acme", "c1", "counter")
        saver.put(config, checkpoint, {"step": 1}, {"count": 1})
    other = open_store(store_settings)  # another process's view of the database
    try:
        assert other.turn_count("acme", "c1") == 1
        assert other.checkpointer().get_tuple(config).checkpoint["channel_values"] == {"count": 1}
    finally:
        other.close()


def test_the_schema_is_made_from_nothing_and_migrated_from_the_previous_version(store_settings):
    db = open_database(store_settings)
    try:
        assert schema_version(db) == 0
        assert migrate(db, target=NEWEST - 1) == list(range(1, NEWEST))
        with db.transaction():
            db.execute("INSERT INTO handoffs (tenant_id, conversation_id, state, reason, requested_at)"
                       " VALUES ('acme', 'c1', 'pending', 'asked', 1.5)")
        assert migrate(db) == [NEWEST] and migrate(db) == []
        versions = db.execute("SELECT version, description FROM schema_migrations ORDER BY version").fetchall()
        assert [v for v, _ in versions] == [m.version for m in MIGRATIONS]
        assert db.execute("SELECT reason, requested_at FROM handoffs").fetchall() == [("asked", 1.5)]
    finally:
        db.close()
    store = open_store(store_settings)  # what a start does: nothing left to apply
    try:
        assert store.handoffs("acme")[0]["conversation_id"] == "c1"
    finally:
        store.close()


def test_a_database_newer_than_this_release_is_refused(store_settings):
    db = open_database(store_settings)
    migrate(db)
    with db.transaction():
        db.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, 'later', 0)",
                   (NEWEST + 1,))
    db.close()
    with pytest.raises(RuntimeError, match=f"schema version {NEWEST + 1}, newer than this release's {NEWEST}"):
        open_store(store_settings)


# -- rate limits shared by workers ---------------------------------------------------------

def test_two_workers_on_one_database_draw_from_the_same_rate_limit(store_settings, store):
    from server.errors import ApiError
    from server.limits import RateLimiter

    other = open_store(store_settings)  # a second worker: its own connection to the same database
    try:
        now = [1000.0]
        one, two = (RateLimiter(3, "from this address", store=s, name="ip", clock=lambda: now[0])
                    for s in (store, other))
        one.check("1.2.3.4")
        two.check("1.2.3.4")
        one.check("1.2.3.4")
        with pytest.raises(ApiError) as refused:  # 3 a minute between them, not 3 each
            two.check("1.2.3.4")
        assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "20"
        two.check("5.6.7.8")  # another address has its own bucket
        now[0] += 20.0
        two.check("1.2.3.4")  # one token back after 20 s, for either worker
        with pytest.raises(ApiError):
            one.check("1.2.3.4")
        now[0] -= 30.0  # a worker whose clock is behind refills nothing
        with pytest.raises(ApiError):
            one.check("1.2.3.4")
    finally:
        other.close()


def test_workers_racing_for_a_bucket_get_exactly_its_tokens(store_settings, store):
    stores = [store, open_store(store_settings)]
    granted = []

    def take(s) -> None:
        for _ in range(40):
            if s.take_token("race", "k", 50.0, 50 / 60, 1000.0) == 0.0:
                granted.append(1)

    threads = [threading.Thread(target=take, args=(s,)) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(granted) == 50  # 80 tries at one instant, 50 tokens: never one more
    finally:
        stores[1].close()


def test_full_buckets_are_forgotten(store):
    store.take_token("ip", "old", 3.0, 0.05, 1000.0)
    store.take_token("ip", "new", 3.0, 0.05, 1100.0)
    store.take_token("key", "old", 3.0, 0.05, 1000.0)
    assert store.forget_buckets("ip", 1040.0) == 1
    assert store.forget_buckets("ip", 1040.0) == 0 and store.forget_buckets("key", 1040.0) == 1


def test_workers_starting_together_migrate_once(postgres_url, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    databases = [open_database(settings) for _ in range(3)]
    applied: list[list[int]] = []
    threads = [threading.Thread(target=lambda db=db: applied.append(migrate(db))) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(applied) == [[], [], list(range(1, NEWEST + 1))]
    assert databases[0].execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == NEWEST
    for db in databases:
        db.close()


# -- assistants on PostgreSQL -------------------------------------------------------------

@pytest.fixture(scope="module")
def encoder():
    from retrieval.query_encoder import load_query_encoder

    return load_query_encoder(None, int8=False)


def counter_assistant(settings, encoder) -> Assistant:
    return Assistant(settings, InstantModel(("ok.",)), LoadedSkills({"counter": skill(Counter, "counter")}), encoder)


@pytest.mark.slow
def test_two_assistants_on_one_postgres_share_conversations_and_skill_state(postgres_url, tmp_path, encoder):
    first = counter_assistant(Settings(data_dir=tmp_path / "one", database_url=postgres_url), encoder)
    second = counter_assistant(Settings(data_dir=tmp_path / "two", database_url=postgres_url), encoder)
    try:
        started = ask(first, "hello", "counter", tenant="acme")
        assert ask(second, "again", "counter", started.conversation_id, tenant="acme").lepton["count"] == 2
        assert ask(first, "and again", "counter", started.conversation_id, tenant="acme").lepton["count"] == 3
        assert [m["content"] for m in second.history("acme", started.conversation_id)] == [
            "hello", "ok. 1", "again", "ok. 2", "and again", "ok. 3"]
        assert second.store.turn_count("acme", started.conversation_id) == 3
    finally:
        first.close()
        second.close()


def lepton(*args, data_dir, **env):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LEPTON_DATA_DIR": str(data_dir), **env})


@pytest.mark.slow
def test_migrate_from_sqlite_copies_records_and_states_verifiably(postgres_url, tmp_path, encoder):
    old = Settings(data_dir=tmp_path / "old")
    assistant = counter_assistant(old, encoder)
    first = ask(assistant, "hello", "counter", tenant="acme")
    ask(assistant, "again", "counter", first.conversation_id, tenant="acme")
    second = ask(assistant, "hi", "counter")
    assistant.store.add_feedback("acme", first.conversation_id, 1, -1, "Say hello back.")
    assistant.store.open_handoff("default", second.conversation_id, "asked for a person")
    assistant.close()

    copied = lepton("db", "migrate-from-sqlite", "--json", data_dir=old.data_dir, LEPTON_DATABASE_URL=postgres_url)
    assert copied.returncode == 0, copied.stderr
    result = json.loads(copied.stdout.splitlines()[-1])
    assert result["tables"]["conversations"] == 2 and result["tables"]["feedback"] == 1
    assert result["tables"]["audit_log"] == 3 and result["conversations_sampled"] == 2 and result["checkpoints"] > 0
    assert "verified: counts equal" in copied.stdout

    # The copy carries on where SQLite left off: state, history, ids.
    moved = counter_assistant(Settings(data_dir=tmp_path / "new", database_url=postgres_url), encoder)
    try:
        assert ask(moved, "third", "counter", first.conversation_id, tenant="acme").lepton["count"] == 3
        assert len(moved.history("acme", first.conversation_id)) == 6
        assert moved.store.handoff("default", second.conversation_id)["state"] == "pending"
        assert moved.store.add_feedback("acme", first.conversation_id, 3, 1, None) == 2  # ids continue
    finally:
        moved.close()

    again = lepton("db", "migrate-from-sqlite", data_dir=old.data_dir, LEPTON_DATABASE_URL=postgres_url)
    assert again.returncode == 1 and "is not empty" in again.stderr and "Traceback" not in again.stderr
    assert again.stderr.count("\n") == 1


def test_migrate_from_sqlite_says_what_is_missing_in_one_line(tmp_path, postgres_url):
    nothing = lepton("db", "migrate-from-sqlite", data_dir=tmp_path / "none", LEPTON_DATABASE_URL=postgres_url)
    assert nothing.returncode == 1 and nothing.stderr.startswith("Error: no SQLite database at ")
    open_store(Settings(data_dir=tmp_path / "old")).close()
    no_target = lepton("db", "migrate-from-sqlite", data_dir=tmp_path / "old")
    assert no_target.returncode == 1 and "set LEPTON_DATABASE_URL" in no_target.stderr
    bad = lepton("db", "status", data_dir=tmp_path / "old", LEPTON_DATABASE_URL="mysql://db/lepton")
    assert bad.returncode != 0 and "database_url must be a PostgreSQL URL" in bad.stderr
    for stderr in (nothing.stderr, no_target.stderr, bad.stderr):
        assert "Traceback" not in stderr and stderr.count("\n") == 1


def test_db_status_and_migrate_name_the_database_and_its_version(tmp_path, postgres_url):
    before = lepton("db", "status", "--json", data_dir=tmp_path, LEPTON_DATABASE_URL=postgres_url)
    status = json.loads(before.stdout)
    assert status["schema_version"] == 0 and status["pending"] == [m.version for m in MIGRATIONS]
    assert status["database"].startswith("PostgreSQL lepton_test_") and status["database"].endswith(
        postgres_url.rsplit("@", 1)[1].split("/")[0])
    done = lepton("db", "migrate", data_dir=tmp_path, LEPTON_DATABASE_URL=postgres_url)
    versions = ", ".join(str(m.version) for m in MIGRATIONS)
    assert done.returncode == 0 and f"applied migration(s) {versions}" in done.stdout
    after = lepton("db", "status", data_dir=tmp_path, LEPTON_DATABASE_URL=postgres_url)
    assert after.stdout.strip().endswith(f"schema version {NEWEST}, up to date")
