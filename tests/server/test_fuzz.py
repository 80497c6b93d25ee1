"""Schemathesis fuzzes every route of the OpenAPI document, admin routes included, against a
real server with the real model: no request, however malformed, gets a 5xx.

Bounded: a few examples per operation, answers of at most 2 tokens (LEPTON_MAX_ANSWER_TOKENS),
so the whole run stays within minutes on a small machine.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from assistant import Assistant, Settings
from tests.conftest import LiveServer, free_port

pytestmark = pytest.mark.slow

def _spec() -> dict:
    """The server's OpenAPI document, as /openapi.json serves it (building the app loads nothing)."""
    import tempfile

    from server import create_app

    return create_app(Settings(data_dir=tempfile.gettempdir() + "/lepton-openapi")).openapi()


schema = schemathesis.openapi.from_dict(_spec())


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory, model_path, llm):
    from server import create_app

    data = tmp_path_factory.mktemp("fuzz") / "data"
    config = Settings(data_dir=data, model=model_path, max_tokens=2, max_answer_tokens=2, admin_access="loopback",
                      demo_knowledge=False, demo_skills=False, max_upload_bytes=64 * 1024,
                      max_admin_request_bytes=256 * 1024)
    assistant = Assistant.from_settings(config, llm=llm)
    live = LiveServer(create_app(config, assistant), free_port(), config).start()
    yield live
    live.stop()
    assistant.close()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, fuzzed_server):
    response = case.call(base_url=fuzzed_server.base_url, timeout=60)
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:400])
    content_type = response.headers.get("content-type") or [""]  # schemathesis keeps every value of a header
    if response.status_code >= 400 and content_type[0].startswith("application/json"):
        error = response.json()["error"]  # the OpenAI shape, on every route
        assert set(error) == {"message", "type", "param", "code"}
