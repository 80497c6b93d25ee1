"""Metrics, request ids, the access log and JSON logs, on a real server with the real model."""

from __future__ import annotations

import json
import logging

import httpx
from prometheus_client.parser import text_string_to_metric_families

from server.observability import JsonFormatter


def samples(live) -> dict[tuple[str, tuple], float]:
    text = httpx.get(live.base_url + "/metrics", timeout=30).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_turns_tokens_routing_and_safety(live):
    before = samples(live)
    routed = httpx.post(live.base_url + "/v1/chat/completions", timeout=120,
                        json={"messages": [{"role": "user", "content": "Where is my parcel?"}], "max_tokens": 3})
    skill = routed.json()["lepton"]["skill"]
    crisis = httpx.post(live.base_url + "/v1/chat/completions", timeout=120,
                        json={"model": "recommendation", "messages": [{"role": "user", "content": "I want to kill myself"}]})
    assert crisis.json()["lepton"]["safety"] == "crisis"
    httpx.get(live.base_url + "/v1/models/no_such_model", timeout=30)
    after = samples(live)
    chat_route = {"route": "/v1/chat/completions", "method": "POST"}
    assert value(after, "lepton_http_requests_total", **chat_route, status="200") - \
        value(before, "lepton_http_requests_total", **chat_route, status="200") == 2
    assert value(after, "lepton_http_request_duration_seconds_count", **chat_route) >= 2
    assert value(after, "lepton_http_errors_total", route="/v1/models/{model_id}", **{"class": "4xx"}) == 1
    assert value(after, "lepton_turns_total", skill=skill) >= 1
    assert value(after, "lepton_turn_duration_seconds_count", skill=skill) >= 1
    assert value(after, "lepton_tokens_total", skill=skill, kind="completion") >= 1
    assert value(after, "lepton_routing_decisions_total", skill=skill) >= 1
    assert value(after, "lepton_safety_triggers_total", kind="crisis") == 1
    assert value(after, "lepton_backend_up") == 1.0
    # Routes are labelled by their template, not by the ids in the path.
    assert not any("no_such_model" in str(labels) for _, labels in after)


def test_every_response_has_a_request_id_that_the_access_log_and_turn_logs_carry(live, caplog):
    caplog.set_level(logging.INFO)
    mine = httpx.post(live.base_url + "/v1/chat/completions", headers={"X-Request-Id": "trace-42"}, timeout=120,
                      json={"messages": [{"role": "user", "content": "hello"}], "max_tokens": 2})
    assert mine.headers["x-request-id"] == "trace-42"
    generated = httpx.get(live.base_url + "/healthz", headers={"X-Request-Id": "not <an> id"})
    assert len(generated.headers["x-request-id"]) == 32  # a malformed one is replaced
    refused = httpx.get(live.base_url + "/admin/collections", headers={"Host": "evil.example"})
    assert refused.status_code == 403 and refused.headers["x-request-id"]
    access = [r for r in caplog.records if r.name == "lepton.access"]
    lines = [r.getMessage() for r in access]
    assert any(line.startswith("POST /v1/chat/completions 200") for line in lines), lines
    assert any(line.startswith("GET /admin/collections 403") for line in lines), lines
    formatter = JsonFormatter()
    chat_line = next(json.loads(formatter.format(r)) for r in access if r.getMessage().startswith("POST"))
    assert chat_line["route"] == "/v1/chat/completions" and chat_line["status"] == 200
    assert chat_line["time"].endswith("Z") and "T" in chat_line["time"]
    # The turn's own log line, written on its worker thread, carries the request's id.
    turn = [r for r in caplog.records if r.name == "assistant.turns" and r.getMessage().startswith("turn ")]
    assert turn and json.loads(formatter.format(turn[-1]))["request_id"] == "trace-42"


def test_readiness_names_no_paths(live, settings):
    ready = httpx.get(live.base_url + "/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "backend": "local", "database": "ok"}
    assert str(settings.data_dir) not in ready.text and str(settings.model) not in ready.text
