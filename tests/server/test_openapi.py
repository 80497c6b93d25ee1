"""The OpenAPI document describes every request body, so clients and fuzzers can use it as is."""

from __future__ import annotations

import json

from assistant import Settings
from server import create_app


def test_every_route_that_takes_a_body_documents_it(tmp_path):
    spec = create_app(Settings(data_dir=tmp_path / "data")).openapi()  # no model is loaded for this
    taking = {(path, method) for path, ops in spec["paths"].items() for method in ops if method in ("post", "put", "patch")}
    assert ("/v1/chat/completions", "post") in taking and ("/admin/skills", "post") in taking
    bodiless = {("/admin/conversations/{conversation_id}/release", "post")}  # the action is the path
    for path, method in taking - bodiless:
        body = spec["paths"][path][method].get("requestBody")
        assert body and body.get("content"), (path, method)
    chat = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "messages" in chat["required"] and chat["properties"]["messages"]["items"]
    feedback = spec["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(feedback["required"]) >= {"conversation_id", "message_index", "rating"}
    # Self-contained: no reference points into a schema's own $defs, which would not resolve here.
    assert "#/$defs/" not in json.dumps(spec)
