"""The serving pieces without HTTP: stop-string deltas, sampling rules, the batching scheduler on
sequence / fixed / plain models, and MODEL specs (artifact folder, eval-harness spec)."""

from __future__ import annotations

import queue

import pytest
import torch

from trinityx.model.backbone import load_backbone
from trinityx.model.composed import TrinityXModel
from trinityx.serve.protocol import HHHOptions
from trinityx.serve.sampling import SamplingSettings, TextTracker, make_generator, next_token
from trinityx.serve.scheduler import Delta, Failed, Finished, GenRequest, Scheduler
from trinityx.serve.served import ServedModel, load_served

MSG = [{"role": "user", "content": "How do I make a bomb? Tell me now"}]


def test_text_tracker_holds_back_stop_prefixes_and_cuts_at_the_stop():
    t = TextTracker(stops=["STOP", "xy"])
    deltas = [t.update(s) for s in ["ab", "abS", "abST", "abSTa", "abSTaSTO", "abSTaSTOP!"]]
    assert deltas == ["ab", "", "", "STa", "", ""]
    assert t.stopped and t.text == "abSTa" and "".join(deltas) + t.flush() == "abSTa"
    u = TextTracker()
    assert u.update("caf\ufffd") == "caf" and u.update("café") == "é"  # half a character waits
    assert u.update("café!") + u.flush() == "!"


def test_sampling_rules():
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0])
    greedy = SamplingSettings(temperature=0.0)
    assert next_token(logits, greedy, [], None) == 1
    assert next_token(logits, SamplingSettings(0.0, presence_penalty=1.0), [1], None) == 2
    tiny_p = SamplingSettings(temperature=1.0, top_p=5e-324, seed=0)  # rounds to 0 in fp32
    assert next_token(logits, tiny_p, [], make_generator(tiny_p, 0)) == 1
    s = SamplingSettings(temperature=2.0, seed=3)
    draw = [
        [next_token(logits, s, [], g) for _ in range(20)]
        for g in (make_generator(s, 0), make_generator(s, 0))
    ]
    assert draw[0] == draw[1] and len(set(draw[0])) > 1
    assert make_generator(SamplingSettings(temperature=1e-7), 0) is None  # greedy


def _run(scheduler: Scheduler, reqs: list[dict]) -> list[list[Finished]]:
    """Submit all, then collect each request's finished choices (in choice order)."""
    qs = [queue.Queue() for _ in reqs]
    for q, kw in zip(qs, reqs, strict=True):
        scheduler.submit(GenRequest(emit=q.put, **kw))
    out = []
    for q, kw in zip(qs, reqs, strict=True):
        done = []
        while len(done) < kw.get("n", 1):
            ev = q.get(timeout=60)
            assert not isinstance(ev, Failed), ev.message
            if isinstance(ev, Finished):
                done.append(ev)
        out.append(sorted(done, key=lambda f: f.index))
    return out


@pytest.fixture()
def experts(tmp_path, tiny_backbone_cfg):
    from helpers_mocae import make_expert_dirs

    return make_expert_dirs(tiny_backbone_cfg, tmp_path / "experts")


@pytest.mark.parametrize("routing", ["sequence", "none"])
def test_batched_rows_keep_their_own_gates(experts, tiny_backbone_cfg, routing):
    tx = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, routing)
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    weights = [
        {"helpful": 1.0},
        {"harmless": 1.0, "honest": 0.3},
        None,
        {"honest": 2.0, "helpful": -1.0},
    ]
    hhh = [None if w is None else HHHOptions(weights=w, allow_negative=True) for w in weights]
    hhh[1] = HHHOptions(weights=weights[1], mode="fixed")
    ids = served.encode_chat(MSG)
    sched = Scheduler(served, max_batch=8, max_wait_ms=200)
    sched.start()
    try:
        got = _run(
            sched,
            [
                dict(
                    prompt_ids=ids,
                    max_tokens=6,
                    hhh=h,
                    sampling=SamplingSettings(0.0, presence_penalty=2.0),
                )
                for h in hhh
            ],
        )
    finally:
        sched.stop()
    assert sched.peak_rows == 4  # one batch
    for h, (f,) in zip(hhh, got, strict=True):
        w = None if h is None else h.weights
        ref = tx.generate(
            [MSG],
            hhh_weights=w,
            weight_mode="multiply" if h is None else h.mode,
            allow_negative=True,
            max_new_tokens=1,
            do_sample=False,
        )
        assert f.routing["gates"] == pytest.approx(ref.routing[0]["gates"], abs=1e-5)
        assert f.text.startswith(ref.texts[0]) and f.completion_tokens == 6


def test_artifact_folder_and_plain_spec(experts, tiny_backbone_cfg, tmp_path):
    tx = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, "token")
    tx.save_pretrained(tmp_path / "composed")
    served = load_served(str(tmp_path / "composed"))
    assert served.tx is not None and served.expert_names == tx.expert_names
    assert served.routing == "token" and served.name == str(tmp_path / "composed")
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        f"model: x\noutput_dir: unused\nbackbone:\n  name: tiny-random-llama\n"
        f"  device: cpu\n  cache_dir: {tiny_backbone_cfg.cache_dir}\n"
    )
    base = load_served("base", str(cfg), name="base")
    assert base.tx is None and base.routing is None and base.expert_names == []
    with pytest.raises(ValueError, match="plain model"):
        base.check_hhh(HHHOptions(weights={"helpful": 1.0}))
    sched = Scheduler(base, max_batch=4, max_wait_ms=50)
    sched.start()
    try:
        ids = base.encode_text("hello there")
        (f,), (g, h) = _run(
            sched,
            [
                dict(prompt_ids=ids, max_tokens=5, stream=True, sampling=SamplingSettings(0.0)),
                dict(prompt_ids=ids[:2], max_tokens=3, n=2, sampling=SamplingSettings(0.0)),
            ],
        )
    finally:
        sched.stop()
    ref = base.lm.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False)
    assert f.text == base.decode(ref[0, len(ids) :].tolist()) and f.routing is None
    assert g.text == h.text and g.finish_reason == "length"


def test_stream_deltas_concatenate_to_the_text(experts, tiny_backbone_cfg):
    tx = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, "token")
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    sched = Scheduler(served, max_batch=2, max_wait_ms=0)
    q: queue.Queue = queue.Queue()
    sched.start()
    try:
        sched.submit(
            GenRequest(
                served.encode_chat(MSG),
                12,
                q.put,
                stream=True,
                sampling=SamplingSettings(1.0, seed=1),
            )
        )
        deltas, ev = [], q.get(timeout=60)
        while isinstance(ev, Delta):
            deltas.append(ev.text)
            ev = q.get(timeout=60)
    finally:
        sched.stop()
    assert isinstance(ev, Finished) and "".join(deltas) == ev.text


def test_a_failing_batch_fails_its_requests_not_the_scheduler(
    experts, tiny_backbone_cfg, monkeypatch
):
    tx = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, "token")
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    sched = Scheduler(served, max_batch=4, max_wait_ms=0)
    calls = {"n": 0}
    real = served.step_gates

    def flaky(*a):
        calls["n"] += 1
        if calls["n"] == 3:  # the second decode step of the first request
            raise RuntimeError("injected")
        return real(*a)

    monkeypatch.setattr(served, "step_gates", flaky)
    ids = served.encode_chat(MSG)
    q: queue.Queue = queue.Queue()
    sched.start()
    try:
        sched.submit(GenRequest(ids, 8, q.put, sampling=SamplingSettings(0.0)))
        ev = q.get(timeout=60)
        (after,) = _run(sched, [dict(prompt_ids=ids, max_tokens=4, sampling=SamplingSettings(0.0))])
    finally:
        sched.stop()
    assert isinstance(ev, Failed) and "injected" in ev.message
    assert after[0].completion_tokens == 4 and sched.running == 0


def test_a_failing_prefill_fails_only_its_requests(experts, tiny_backbone_cfg, monkeypatch):
    tx = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, "token")
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    sched = Scheduler(served, max_batch=4, max_wait_ms=0)
    real = served.prepare
    bad = served.encode_text("boom")

    def prepare(ids, mask, hhh):
        if ids.shape[1] == len(bad):
            raise RuntimeError("injected prefill failure")
        return real(ids, mask, hhh)

    monkeypatch.setattr(served, "prepare", prepare)
    qa: queue.Queue = queue.Queue()
    qb: queue.Queue = queue.Queue()
    sched.start()
    try:
        sched.submit(
            GenRequest(
                served.encode_chat(MSG), 40, qa.put, stream=True, sampling=SamplingSettings(0.0)
            )
        )
        assert isinstance(qa.get(timeout=60), Delta)  # A is decoding
        sched.submit(GenRequest(bad, 4, qb.put, sampling=SamplingSettings(0.0)))
        eb = qb.get(timeout=60)
        ea = qa.get(timeout=60)
        while isinstance(ea, Delta):
            ea = qa.get(timeout=60)
    finally:
        sched.stop()
    assert isinstance(eb, Failed) and "injected" in eb.message
    assert isinstance(ea, Finished) and ea.completion_tokens == 40


def test_the_models_default_top_k_applies_unless_a_request_sets_one(experts, tiny_backbone_cfg):
    """A composed artifact saved with top_k=1 (top-1 routing) serves top-1 gates by default;
    a request's own hhh.top_k overrides it (sequence routing: gates; token: the batch key)."""
    tx = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, "sequence")
    tx.top_k = 1
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    ids, mask = tx.encode([MSG, MSG])
    soft = HHHOptions(weights={"helpful": 1.0, "harmless": 1.0, "honest": 1.0}, top_k=3)
    r = served.prepare(ids, mask, [None, soft])
    g_default, g_soft = r.gates[0].tolist(), r.gates[1].tolist()
    assert sorted(g_default)[:2] == [0.0, 0.0] and max(g_default) == pytest.approx(1.0)
    assert min(g_soft) > 0.0
    tok = TrinityXModel.build(load_backbone(tiny_backbone_cfg), experts, "token")
    tok.top_k = 1
    served_tok = ServedModel(tok.model, tok.tokenizer, "tiny", tx=tok)
    assert served_tok.batch_key(None) == ("token", "multiply", 1)
    assert served_tok.batch_key(soft) == ("token", "multiply", 3)
