"""The OpenAI-compatible server on a tiny composed model (in-process, no network)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from trinityx.model.backbone import load_backbone
from trinityx.model.composed import TrinityXModel
from trinityx.serve.app import create_app


@pytest.fixture()
def client(tmp_path, tiny_backbone_cfg):
    from helpers_mocae import make_expert_dirs

    experts = make_expert_dirs(tiny_backbone_cfg, tmp_path)
    model = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, "token")
    return TestClient(create_app(model, "tiny")), model


def test_chat_completion_with_weights(client):
    c, model = client
    r = c.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4,
        "hhh_weights": {"helpful": 1.0, "harmless": 0.5, "honest": 0.5},
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    routing = body["trinityx"]["routing"]
    assert set(routing["gates"]) == set(model.expert_names)
    assert routing["weights"]["helpful"] == pytest.approx(1.0)
    expected = model.generate([[{"role": "user", "content": "hello there"}]],
                              hhh_weights={"helpful": 1.0, "harmless": 0.5, "honest": 0.5},
                              max_new_tokens=4).texts[0]
    assert body["choices"][0]["message"]["content"] == expected


def test_completions_batch_and_models(client):
    c, _ = client
    r = c.post("/v1/completions", json={"prompt": ["a", "b c"], "max_tokens": 3})
    assert r.status_code == 200 and len(r.json()["choices"]) == 2
    assert c.get("/v1/models").json()["data"][0]["id"] == "tiny"


def test_bad_requests_are_400_with_reason(client):
    c, _ = client
    neg = c.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "x"}], "hhh_weights": {"harmless": -1.0}})
    assert neg.status_code == 400 and "allow_negative" in neg.json()["detail"]
    unknown = c.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "x"}], "hhh_weights": {"creative": 1.0}})
    assert unknown.status_code == 400 and "helpful" in unknown.json()["detail"]
    ok = c.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "x"}], "max_tokens": 2,
        "hhh_weights": {"helpful": 1.0, "harmless": -0.5}, "allow_negative": True})
    assert ok.status_code == 200
    assert c.post("/v1/chat/completions", json={"messages": []}).status_code == 422
