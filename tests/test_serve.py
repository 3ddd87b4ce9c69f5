"""`trinityx serve` end to end: real uvicorn on an ephemeral loopback port, the official `openai`
client, a tiny composed model (token routing) and raw HTTP for what a client library would not
send. One server per module (API key set), so the tests also exercise a long-lived scheduler.
"""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import torch

from trinityx.model.backbone import load_backbone
from trinityx.model.composed import TrinityXModel
from trinityx.serve.app import create_app, serve_in_thread
from trinityx.serve.served import ServedModel
from trinityx.serve.serving import Limits

KEY = "test-key"
MSG = [{"role": "user", "content": "hello there"}]
VARY = {"presence_penalty": 1.5}  # a random tiny model repeats one token; this varies them


@pytest.fixture(scope="module")
def tx(tmp_path_factory, tiny_backbone_cfg):
    from helpers_mocae import make_expert_dirs

    root = tmp_path_factory.mktemp("serve-experts")
    return TrinityXModel.build(
        load_backbone(tiny_backbone_cfg), make_expert_dirs(tiny_backbone_cfg, root), "token"
    )


@pytest.fixture(scope="module")
def server(tx):
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    app = create_app(
        served,
        max_batch=8,
        max_wait_ms=20,
        api_key=KEY,
        limits=Limits(default_max_tokens=16, max_tokens=400, max_n=4),
    )
    with serve_in_thread(app) as url:
        yield url, app.state.scheduler


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, timeout=60, max_retries=0)


def chat(client, **kw):
    args = {"model": "tiny", "messages": MSG, "temperature": 0, "max_tokens": 10, **VARY, **kw}
    return client.chat.completions.create(**args)


def test_chat_equals_model_generate_and_reports_routing(client, tx):
    w = {"helpful": 1.0, "harmless": 0.5, "honest": 0.25}
    r = client.chat.completions.create(
        model="tiny",
        messages=MSG,
        temperature=0,
        max_tokens=8,
        extra_body={"hhh": {"weights": w, "per_token": True}},
    )
    ref = tx.generate([MSG], hhh_weights=w, max_new_tokens=8, do_sample=False).texts[0]
    choice = r.choices[0]
    assert choice.message.content == ref
    assert choice.finish_reason == "length" and r.usage.completion_tokens == 8
    assert r.usage.prompt_tokens == len(tx.encode([MSG])[0][0])
    assert r.usage.total_tokens == r.usage.prompt_tokens + 8
    routing = choice.routing
    assert routing["weights"] == pytest.approx(w)
    assert set(routing["gates"]) == set(tx.expert_names) and len(routing["per_token"]) == 8
    mean = {k: sum(t[k] for t in routing["per_token"]) / 8 for k in w}
    assert routing["gates"] == pytest.approx(mean, abs=1e-6)


def test_completions_use_no_chat_template(client, tx):
    r = client.completions.create(
        model="tiny", prompt="hello there", temperature=0, max_tokens=6, **VARY
    )
    ids = tx.tokenizer("hello there")["input_ids"]
    assert r.usage.prompt_tokens == len(ids)  # chat would add the ChatML wrapper
    raw = tx.generate(input_ids=torch.tensor([ids]), max_new_tokens=1, do_sample=False)
    first = tx.tokenizer.decode(raw.sequences[0, len(ids) :], skip_special_tokens=True)
    assert r.choices[0].text.startswith(first)
    many = client.completions.create(model="tiny", prompt=["a", "b c"], n=2, max_tokens=3)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_stream_equals_non_stream_under_greedy(client, kind):
    kw = dict(temperature=0, max_tokens=12, n=2, **VARY)
    if kind == "chat":
        full = client.chat.completions.create(model="tiny", messages=MSG, **kw)
        stream = client.chat.completions.create(
            model="tiny", messages=MSG, stream=True, stream_options={"include_usage": True}, **kw
        )
        want = {c.index: c.message.content for c in full.choices}
    else:
        full = client.completions.create(model="tiny", prompt="hello", **kw)
        stream = client.completions.create(
            model="tiny", prompt="hello", stream=True, stream_options={"include_usage": True}, **kw
        )
        want = {c.index: c.text for c in full.choices}
    got, reasons, usage = {0: "", 1: ""}, {}, None
    for ch in stream:
        usage = ch.usage or usage
        for c in ch.choices:
            got[c.index] += (c.delta.content or "") if kind == "chat" else c.text
            if c.finish_reason:
                reasons[c.index] = c.finish_reason
    assert got == want
    assert reasons == {c.index: c.finish_reason for c in full.choices}
    assert usage.model_dump() == full.usage.model_dump()


def test_sse_wire_format_ends_with_done(server):
    url, _ = server
    body = {"messages": MSG, "max_tokens": 3, "stream": True}
    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]" and events.count("data: [DONE]") == 1
    first = json.loads(events[0][6:])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"


def test_stop_sequences(client):
    base = chat(client, max_tokens=16).choices[0].message.content
    k = next(i for i in range(2, len(base) - 1) if "\ufffd" not in base[i : i + 2])
    stop = base[k : k + 2]
    cut = base[: base.find(stop)]
    r = chat(client, max_tokens=16, stop=[stop, "never-generated"])
    assert r.choices[0].message.content == cut
    assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens < 16
    streamed = "".join(
        ch.choices[0].delta.content or ""
        for ch in chat(client, max_tokens=16, stop=stop, stream=True)
        if ch.choices
    )
    assert streamed == cut
    r = chat(client, max_tokens=5, stop="never-generated")
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_n_and_seeded_sampling(client):
    kw = dict(temperature=1.0, n=3, max_tokens=8)
    a = chat(client, seed=7, **kw)
    b = chat(client, seed=7, **kw)
    c = chat(client, seed=8, **kw)
    texts = [[x.message.content for x in r.choices] for r in (a, b, c)]
    assert len(texts[0]) == 3 and [x.index for x in a.choices] == [0, 1, 2]
    assert texts[0] == texts[1]  # same seed, same answers
    assert texts[0] != texts[2] and len(set(texts[0])) > 1  # choices and seeds differ
    assert a.usage.completion_tokens == 24


def test_errors_are_openai_shaped_4xx(server):
    url, _ = server
    h = {"Authorization": f"Bearer {KEY}"}

    def post(body, path="/v1/chat/completions", **kw):
        r = httpx.post(
            url + path,
            headers={**h, **kw.pop("headers", {})},
            timeout=60,
            **({"json": body} if not isinstance(body, bytes) else {"content": body}),
            **kw,
        )
        assert set(r.json()) == {"error"}, r.text
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        return r.status_code, r.json()["error"]

    user = {"messages": MSG}
    bad = [
        (b"{not json", None, {"Content-Type": "application/json"}),
        (b"{not json", None, {}),
        ({}, "messages", {}),
        ({"messages": []}, "messages", {}),
        ({**user, "temperature": 5}, "temperature", {}),
        ({**user, "n": 99}, "n", {}),
        ({**user, "n": 5}, "n", {}),  # above this server's --max-n
        ({**user, "max_tokens": 10_000}, "max_tokens", {}),
        ({**user, "max_tokens": 0}, "max_tokens", {}),
        ({**user, "stop": ["a", "b", "c", "d", "e"]}, "stop", {}),
        ({**user, "logprobs": True}, "logprobs", {}),
        ({**user, "best_of": 2}, "best_of", {}),
        ({**user, "hhh": {"weights": {"creative": 1.0}}}, "hhh", {}),
        ({**user, "hhh": {"weights": {"harmless": -1.0}}}, "hhh", {}),
        ({**user, "hhh": {"mode": "fixed"}}, "hhh", {}),
        ({**user, "hhh": {"top_k": 9}}, "hhh", {}),
        ({**user, "hhh": {"weights": {"helpful": 0.0}}}, "hhh", {}),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", {}),
    ]
    for body, param, headers in bad:
        status, err = post(body, headers=headers)
        assert status == 400, (body, err)
        assert err["param"] == param, (body, err)
    status, err = post({"messages": [{"role": "user", "content": "word " * 2000}]})
    assert status == 400 and err["code"] == "context_length_exceeded"
    status, err = post(
        {**user, "max_tokens": 200, "messages": [{"role": "user", "content": "word " * 200}]}
    )
    assert status == 400 and err["code"] == "context_length_exceeded"
    assert post({"prompt": []}, "/v1/completions")[0] == 400
    assert post({"prompt": ""}, "/v1/completions")[0] == 400
    status, err = post({**user, "model": "gpt-4"})
    assert status == 404 and err["code"] == "model_not_found"
    assert post({}, "/v1/nothing")[0] == 404
    ok = httpx.post(
        url + "/v1/chat/completions",
        headers=h,
        timeout=60,
        json={
            **user,
            "max_tokens": 2,
            "hhh": {"weights": {"helpful": 1, "harmless": -0.5}, "allow_negative": True},
        },
    )
    assert ok.status_code == 200, ok.text


def test_api_key(server, client):
    url, _ = server
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = httpx.post(url + "/v1/chat/completions", json={"messages": MSG}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(url + "/v1/models", headers=headers).status_code == 401
    assert httpx.get(url + "/health").status_code == 200  # health stays open for probes
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    card = client.models.list().data[0]
    assert card.id == "tiny" and card.experts == ["helpful", "harmless", "honest"]
    assert client.models.retrieve("tiny").context_length == 512
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def _random_request(i: int) -> dict:
    rng = random.Random(i)
    w = {k: round(rng.uniform(0.0, 1.0), 3) for k in ("helpful", "harmless", "honest")}
    w["helpful"] += 0.1  # never all zero
    hhh = {"weights": w, "mode": rng.choice(["multiply", "multiply", "fixed"])}
    if rng.random() < 0.2:
        hhh = {"weights": {"helpful": 1.0, "harmless": -0.5}, "allow_negative": True}
    kw = {
        "max_tokens": rng.randint(3, 14),
        "extra_body": {"hhh": hhh},
        "messages": [{"role": "user", "content": f"question {i}: " + "why " * rng.randint(0, 6)}],
    }
    if i % 2:
        kw.update(temperature=0.9, top_p=0.9, seed=i)
    else:
        kw.update(temperature=0, presence_penalty=1.0)
    if i % 5 == 0:
        kw["stop"] = ["e", "a"]
    return kw


def test_concurrent_requests_equal_each_served_alone(server, client):
    url, scheduler = server
    reqs = [_random_request(i) for i in range(32)]

    def ask(kw):
        r = client.chat.completions.create(model="tiny", **kw)
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens

    with ThreadPoolExecutor(8) as pool:  # 8 in flight at a time
        together = list(pool.map(ask, reqs, timeout=120))
    alone = [ask(kw) for kw in reqs]  # one at a time: each request is its own batch
    assert together == alone
    assert scheduler.peak_rows > 1  # they really shared forward passes
    health = httpx.get(url + "/health").json()
    assert health["status"] == "ok" and health["running"] == 0 and health["waiting"] == 0


def test_disconnect_frees_the_row(server):
    url, scheduler = server
    before = scheduler.cancelled_rows
    # greedy without a penalty repeats one token: no EOS, so the row would run all 200 steps
    body = {"messages": MSG, "max_tokens": 200, "stream": True, "temperature": 0}
    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        json=body,
        timeout=60,
        headers={"Authorization": f"Bearer {KEY}"},
    ) as r:
        lines = r.iter_lines()
        while '"content":""' in next(lines) or scheduler.running == 0:
            pass  # until a generated token arrived: the row is in the batch
    for _ in range(500):  # poll: the scheduler drops the row at its next step
        if scheduler.running == 0:
            break
        time.sleep(0.01)
    assert scheduler.running == 0 and scheduler.cancelled_rows == before + 1
    assert httpx.get(url + "/health").json()["status"] == "ok"


def test_non_streaming_client_that_gives_up_frees_its_row(server, monkeypatch):
    url, scheduler = server
    step = scheduler._step

    def slow_step():  # 400 tiny-model steps can end in ~0.4 s on a quiet machine: keep the row
        time.sleep(0.005)  # alive (>= 2 s) well past the client's 0.3 s timeout + 0.2 s poll
        step()

    monkeypatch.setattr(scheduler, "_step", slow_step)
    before = scheduler.cancelled_rows
    body = {"messages": MSG, "max_tokens": 400, "temperature": 0}  # no EOS: 400 steps
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            url + "/v1/chat/completions",
            json=body,
            timeout=httpx.Timeout(60, read=0.3),
            headers={"Authorization": f"Bearer {KEY}"},
        )
    for _ in range(500):  # the handler polls for the disconnect, the scheduler drops the row
        if scheduler.cancelled_rows > before:
            break
        time.sleep(0.01)
    assert scheduler.cancelled_rows == before + 1
    for _ in range(100):
        if scheduler.running == 0:
            break
        time.sleep(0.01)
    assert scheduler.running == 0


def test_openapi_fuzz_has_no_server_errors(server):
    """schemathesis over every operation of the generated OpenAPI schema: never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    url, _ = server
    spec = httpx.get(url + "/openapi.json").json()
    comps = spec["components"]["schemas"]
    assert {"weights", "mode", "allow_negative", "top_k", "per_token"} <= set(
        comps["HHHOptions"]["properties"]
    )
    assert "routing" in comps["ChatChoice"]["properties"] and "HTTPBearer" in str(spec)
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {op.path for op in ops} >= {"/v1/chat/completions", "/v1/completions", "/v1/models"}
    for op in ops:

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case):
            case.call_and_validate(
                base_url=url,
                headers={"Authorization": f"Bearer {KEY}"},
                checks=[not_a_server_error],
                timeout=60,
            )

        run()
