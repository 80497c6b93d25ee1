"""Admin ingestion routes over real HTTP: upload, re-upload, delete, bad files, auth."""

from __future__ import annotations

import httpx
import pytest

from assistant import Assistant, Settings

pytestmark = pytest.mark.slow

GUIDE = b"# Returns\n\nYou can return any item within 30 days for a full refund.\n"


@pytest.fixture
def admin_live(tmp_path, model_path, llm, start_server):
    settings = Settings(data_dir=tmp_path / "data", model=model_path, admin_access="loopback")
    assistant = Assistant.from_settings(settings, llm=llm)
    yield start_server(settings, assistant)
    assistant.close()


def upload(live, files, collection="help-centre", **params):
    return httpx.post(f"{live.base_url}/admin/collections/{collection}/documents", files=files, params=params,
                      timeout=120)


def test_upload_is_idempotent_and_delete_removes_the_source(admin_live):
    first = upload(admin_live, [("files", ("returns.md", GUIDE, "text/markdown"))])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["ok"] and body["tenant"] == "default"
    assert body["files"][0]["added"] > 0

    again = upload(admin_live, [("files", ("returns.md", GUIDE, "text/markdown"))]).json()
    assert again["files"][0]["added"] == 0 and again["files"][0]["unchanged"] > 0

    listed = httpx.get(f"{admin_live.base_url}/admin/collections").json()["collections"]
    assert listed[0]["name"] == "help-centre" and listed[0]["sources"] == {"returns.md": body["files"][0]["added"]}

    deleted = httpx.delete(f"{admin_live.base_url}/admin/collections/help-centre/documents",
                           params={"source": "returns.md"}).json()
    assert deleted["removed_chunks"] == body["files"][0]["added"]


def test_bad_file_is_reported_and_the_good_one_still_ingests(admin_live):
    response = upload(admin_live, [("files", ("garbage.txt", bytes(range(256)) * 40, "text/plain")),
                                   ("files", ("returns.md", GUIDE, "text/markdown"))])
    body = response.json()
    assert not body["ok"]
    bad, good = body["files"]
    assert not bad["ok"] and "binary" in str(bad["problems"])
    assert good["ok"] and good["added"] > 0


def test_oversized_upload_is_refused_before_anything_is_written(tmp_path, model_path, llm, start_server):
    settings = Settings(data_dir=tmp_path / "data", model=model_path, max_upload_bytes=2048, admin_access="loopback")
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    response = upload(live, [("files", ("returns.md", GUIDE, "text/markdown")),
                             ("files", ("big.txt", b"word " * 1000, "text/plain"))])
    assert response.status_code == 413
    assert "big.txt is over the 2048 byte upload limit" in response.json()["error"]["message"]
    assert httpx.get(f"{live.base_url}/admin/collections").json()["collections"] == []
    assistant.close()


def test_unknown_collection_and_bad_names_are_clear_errors(admin_live):
    missing = httpx.delete(f"{admin_live.base_url}/admin/collections/nothing-here/documents",
                           params={"source": "x.md"})
    assert missing.status_code == 404 and "nothing-here" in missing.json()["error"]["message"]
    bad = upload(admin_live, [("files", ("a.md", GUIDE, "text/markdown"))], collection="no__pe")
    assert bad.status_code == 400


def test_admin_token_is_required_when_configured(tmp_path, model_path, llm, start_server):
    settings = Settings(data_dir=tmp_path / "data", model=model_path, admin_token="s3cret")
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    refused = httpx.get(f"{live.base_url}/admin/collections")
    assert refused.status_code == 401 and "Bearer" in refused.json()["error"]["message"]
    allowed = httpx.get(f"{live.base_url}/admin/collections", headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 200
    assistant.close()
