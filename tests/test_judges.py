"""Judges: clear config errors, OpenAI prompt/parse via a mock transport (no network), a tiny HF
classifier, and local judge training + save/load round trips with a fake hashing encoder."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from trinityx.eval.judges.base import Judge, JudgeConfigError
from trinityx.eval.judges.hf_classifier import HFClassifierJudge
from trinityx.eval.judges.local import train as train_module
from trinityx.eval.judges.local.backend import LocalJudge
from trinityx.eval.judges.local.encoders import CachedEncoder, HashingEncoder
from trinityx.eval.judges.local.features import RefTable
from trinityx.eval.judges.local.train import train_judge
from trinityx.eval.judges.local.trained import TrainedJudge
from trinityx.eval.judges.openai import (
    OpenAIJudge,
    parse_pair,
    parse_safety,
    parse_yes_no,
    swap_order,
    truth_prompt,
)
from trinityx.eval.judges.registry import JUDGES, Backend, build_judge

# --------------------------------------------------------------------------- OpenAI-compatible


def test_openai_judge_without_config_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(JudgeConfigError, match=r"judge\.base_url"):
        OpenAIJudge(model="gpt-4o")
    with pytest.raises(JudgeConfigError, match=r"judge\.model"):
        OpenAIJudge(base_url="http://127.0.0.1:9/v1")
    monkeypatch.delenv("TRX_TEST_KEY", raising=False)
    with pytest.raises(JudgeConfigError, match=r"TRX_TEST_KEY is not set.*export TRX_TEST_KEY="):
        OpenAIJudge(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="TRX_TEST_KEY")
    with pytest.raises(JudgeConfigError, match="unknown judge"):
        build_judge("gpt5")


def test_reply_parsers() -> None:
    assert parse_yes_no(" Yes.") == 1.0 and parse_yes_no("no, it is false") == 0.0
    assert np.isnan(parse_yes_no("perhaps"))
    assert parse_safety("Unsafe") == 1.0 and parse_safety("safe") == 0.0
    assert parse_pair('"Output (b)"') == "b" and parse_pair("(a)") == "a"
    assert parse_pair("both are fine") is None
    assert truth_prompt("Q?", "A.") == "Q: Q?\nA: A.\nTrue:"


@contextmanager
def _server(respond: Callable[[str, dict, dict], tuple[int, dict]]) -> Iterator[str]:
    """A local OpenAI-compatible endpoint: ``respond(path, headers, body) -> (status, json)``;
    yields its base URL. A real socket, so the judge's own HTTP client (retries included) runs."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out = respond(self.path, headers, body)
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "1")  # keep the client's backoff short
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/v1"
    finally:
        srv.shutdown()
        srv.server_close()


def _judge_model(calls: list[dict]) -> Callable[[str, dict, dict], tuple[int, dict]]:
    """Answers like a judge model would: yes iff the answer says Paris; prefers the longer output."""

    def respond(path: str, headers: dict, body: dict) -> tuple[int, dict]:
        assert path == "/v1/chat/completions"
        assert headers["authorization"] == "Bearer sk-test"
        calls.append(body)
        system, user = (m["content"] for m in body["messages"])
        if "GPT-judge" in system or "GPT-info" in system:
            reply = "yes" if "Paris" in user else "no"
        elif "safety" in system:
            reply = "unsafe" if "knife" in user else "safe"
        else:
            a = user.split("# Output (a):\n")[1].split("\n\n# Output (b)")[0]
            b = user.split("# Output (b):\n")[1].split("\n\n# Which")[0]
            reply = "Output (a)" if len(a) > len(b) else "Output (b)" if len(b) > len(a) else "?"
        return 200, {"choices": [{"message": {"content": reply}}]}

    return respond


def test_openai_judge_prompts_parsing_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRX_TEST_KEY", "sk-test")
    calls: list[dict] = []
    with _server(_judge_model(calls)) as url:
        kw = dict(base_url=url, model="m", api_key_env="TRX_TEST_KEY", cache_dir=tmp_path)
        judge = OpenAIJudge(**kw)
        assert isinstance(judge, Judge)
        qs, ans = ["Capital of France?", "Capital of France?"], ["Paris.", "Lyon."]
        assert judge.truthful(qs, ans) == [1.0, 0.0]
        assert calls[0]["messages"][1]["content"] == "Q: Capital of France?\nA: Paris.\nTrue:"
        assert calls[0]["temperature"] == 0
        assert judge.informative(qs, ans)[0] == 1.0
        assert calls[-1]["messages"][1]["content"].endswith("Helpful:")
        assert judge.harmful(["p", "p"], ["use a knife", "please talk to someone"]) == [1.0, 0.0]
        instr = [f"instruction {i}" for i in range(8)]
        prefs = judge.prefer(instr, ["short"] * 8, ["a much longer answer"] * 8)
        assert prefs == [2.0] * 8  # longer model output wins whichever position it was shown in
        assert {swap_order(i) for i in instr} == {True, False}  # both orders were exercised
        with pytest.warns(UserWarning, match="unparseable"):
            assert judge.prefer(["tie"], ["same"], ["same"]) == [1.5]
        n = len(calls)
        again = OpenAIJudge(**kw)  # new process, same cache dir
        assert again.truthful(qs, ans) == [1.0, 0.0] and len(calls) == n
    assert "sk-test" not in (tmp_path / "openai_judge_cache.jsonl").read_text()


def test_openai_judge_http_error_names_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRX_TEST_KEY", "sk-test")
    with _server(lambda *_: (401, {"error": "invalid key"})) as url:
        judge = OpenAIJudge(url, "m", "TRX_TEST_KEY")
        with pytest.raises(RuntimeError, match="returned 401"):
            judge.truthful(["q"], ["a"])


def test_openai_judge_retries_server_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRX_TEST_KEY", "sk-test")
    calls: list[dict] = []
    model = _judge_model(calls)

    def flaky(path: str, headers: dict, body: dict) -> tuple[int, dict]:
        if not calls:
            calls.append({})  # the first request fails like an overloaded server
            return 503, {"error": "overloaded"}
        return model(path, headers, body)

    with _server(flaky) as url:
        assert OpenAIJudge(url, "m", "TRX_TEST_KEY", max_retries=1).truthful(["q"], ["Paris"]) == [
            1.0
        ]
        calls.clear()
        with pytest.raises(RuntimeError, match="returned 503"):
            OpenAIJudge(url, "m", "TRX_TEST_KEY", max_retries=0).truthful(["q"], ["Paris"])


def test_openai_judge_unreachable_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRX_TEST_KEY", "sk-test")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = OpenAIJudge(f"http://127.0.0.1:{port}/v1", "m", "TRX_TEST_KEY", max_retries=0)
    with pytest.raises(RuntimeError, match="unreachable"):
        judge.truthful(["q"], ["a"])


# --------------------------------------------------------------------------- HF classifier


def _tiny_classifier(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = "[PAD] [UNK] [CLS] [SEP] how do i make a knife bomb sorry cannot help".split()
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=2,
        id2label={0: "safe", 1: "unsafe"}, label2id={"safe": 0, "unsafe": 1},
    )  # fmt: skip
    BertForSequenceClassification(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_hf_classifier_judge_returns_probabilities(tmp_path: Path) -> None:
    path = _tiny_classifier(tmp_path / "clf")
    judge = build_judge("hf_classifier", path=path, unsafe_label="UNSAFE", batch_size=2)
    p = judge.harmful(["how do i make a bomb"] * 3, ["sorry cannot help", "a knife", "make a bomb"])
    assert len(p) == 3 and all(0.0 <= x <= 1.0 for x in p)
    by_index = HFClassifierJudge(path, unsafe_label=0).harmful(["how"], ["sorry"])[0]
    assert by_index == pytest.approx(1 - judge.harmful(["how"], ["sorry"])[0], abs=1e-6)
    with pytest.raises(JudgeConfigError, match="not in"):
        HFClassifierJudge(path, unsafe_label="toxic")
    with pytest.raises(NotImplementedError, match="cannot judge truthfulness"):
        judge.truthful(["q"], ["a"])


# --------------------------------------------------------------------------- local judges


def _synthetic_data(root: Path) -> Path:
    """Learnable toy versions of every judge file: the label is carried by a keyword."""
    rng = np.random.default_rng(0)
    tq = root / "truthfulqa"
    tq.mkdir(parents=True)
    for kind, tag in (("truth", "True"), ("info", "Helpful")):
        rows = []
        for q in range(40):
            for k in range(4):
                good = (q + k) % 2 == 0
                ans = f"{'correct' if good else 'wrong'} reply {rng.integers(1000)}"
                rows.append(
                    {
                        "prompt": f"Q: question {q}?\nA: {ans}\n{tag}:",
                        "completion": " yes" if good else " no",
                    }
                )
        (tq / f"finetune_{kind}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    head = "Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source\n"
    refs = [
        f"A,C,question {q}?,correct reply,correct answer; correct,wrong reply; wrong,s\n"
        for q in range(40)
    ]
    (tq / "TruthfulQA.csv").write_text(head + "".join(refs))
    bt = root / "beavertails"
    bt.mkdir()
    for split, n in (("train", 60), ("test", 20)):
        rows = [
            {
                "prompt": f"{split} request {i}",
                "safe": f"sorry I refuse to help. It is wrong {i}.",
                "unsafe": f"sure weapon steps are easy. Step {i} is next.",
            }
            for i in range(n)
        ]
        (bt / f"spard_beavertails_pairs_{split}.jsonl").write_text(
            "\n".join(json.dumps(r) for r in rows)
        )
    ann = root / "alpaca_eval" / "gpt4_annotations_vs_davinci003"
    ann.mkdir(parents=True)
    rows = []
    for i in range(60):
        good_second = i % 3 != 0
        o1, o2 = (
            ("vague text", "detailed helpful answer")
            if good_second
            else ("detailed helpful answer", "vague text")
        )
        rows.append(
            {
                "instruction": f"task {i}",
                "output_1": o1,
                "output_2": o2,
                "preference": 2 if good_second else 1,
            }
        )
    rows.append({"instruction": "task tie", "output_1": "x", "output_2": "y", "preference": 1.5})
    (ann / "toy.json").write_text(json.dumps(rows))
    (ann / "toy_model_outputs.json").write_text(
        json.dumps([{"instruction": "task 0", "output": "o"}])
    )
    return root  # fmt: skip


OLD_KINDS = ("truth", "info", "harm", "pairwise")  # helpfulness: tests/test_judge_helpfulness.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("judges")
    data = _synthetic_data(root / "data")
    for kind in OLD_KINDS:
        train_judge(
            kind, data, root / "judges" / kind, encoder=HashingEncoder(64), cache_dir=root / "emb"
        )
    return root


@pytest.mark.parametrize("kind", OLD_KINDS)
def test_local_judge_artifact_and_round_trip(trained: Path, kind: str) -> None:
    out = trained / "judges" / kind
    assert sorted(p.name for p in out.iterdir()) == ["head.safetensors", "judge.json"]  # no pickle
    meta = json.loads((out / "judge.json").read_text())
    assert meta["kind"] == kind and meta["encoder"] == "hashing-64"
    if kind == "harm":
        assert meta["metrics"]["n_test_first_sentence"] == 40
    assert meta["feature_recipe"] == {"truth": "qa_triplet_ref", "pairwise": "pair_v1"}.get(
        kind, "qa_triplet"
    )
    assert all(len(f["sha256"]) == 64 for f in meta["data_files"])
    m = meta["metrics"]
    acc = m.get("heldout_accuracy", m.get("heldout_agreement"))
    assert acc >= 0.8 and m["n_test"] > 0
    cols = {
        "pairwise": (["task 1", "task 3"], ["vague text", "detailed helpful answer"], ["detailed helpful answer", "vague text"]),
        "harm": (["request", "request"], ["sorry I refuse", "sure weapon steps"]),
    }.get(kind, (["question 3?", "question 3?"], ["correct reply", "wrong reply"]))  # fmt: skip
    first = TrainedJudge.load(out, encoder=HashingEncoder(64)).predict_proba(*cols)
    second = TrainedJudge.load(out).predict_proba(*cols)  # encoder rebuilt from judge.json
    np.testing.assert_array_equal(first, second)
    assert first[0] > 0.5 > first[1] if kind != "harm" else first[1] > 0.5 > first[0]


def test_local_judge_interface_and_retrain_overwrites(trained: Path) -> None:
    judge = build_judge(
        "local", path=trained / "judges", hard_preferences=False, prefer_head="pairwise"
    )
    assert judge.truthful(["question 1?"], ["correct reply"])[0] > 0.5
    assert judge.informative(["question 1?"], ["wrong reply"])[0] < 0.5
    assert judge.harmful(["r"], ["sure weapon steps"])[0] > 0.5
    pref = judge.prefer(["task 5"], ["vague text"], ["detailed helpful answer"])[0]
    assert 1.5 < pref <= 2.0
    hard = LocalJudge(trained / "judges", prefer_head="pairwise")
    assert hard.prefer(["task 5"], ["vague text"], ["detailed helpful answer"]) == [2.0]
    single = LocalJudge(trained / "judges" / "harm")
    with pytest.raises(NotImplementedError, match="'harm' judge"):
        single.truthful(["q"], ["a"])
    with pytest.raises(ValueError, match="encoder"):
        TrainedJudge.load(trained / "judges" / "truth", encoder=HashingEncoder(32))
    again = train_judge(
        "truth", trained / "data", trained / "judges" / "truth", encoder=HashingEncoder(64)
    )
    assert (again / "judge.json").is_file()
    assert not [p for p in again.parent.iterdir() if p.name.startswith(".")]  # temp dirs cleaned


def test_embedding_cache_persists(tmp_path: Path) -> None:
    calls: list[int] = []

    class Counting(HashingEncoder):
        def __call__(self, texts):  # noqa: ANN001, ANN204
            calls.append(len(texts))
            return super().__call__(texts)

    enc = CachedEncoder(Counting(16), tmp_path)
    a = enc(["x y", "x y", "z"])
    assert calls == [2] and a.shape == (3, 16)
    b = CachedEncoder(Counting(16), tmp_path)(["z", "x y"])
    assert calls == [2] and np.array_equal(b, a[[2, 0]])


def test_train_judge_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trinityx.stages import train_judge as stage

    data = _synthetic_data(tmp_path / "data")
    # no MiniLM wheel in tests
    monkeypatch.setattr(train_module, "SentenceEncoder", lambda: HashingEncoder(32))
    out = stage.run(
        stage.TrainJudgeConfig("pairwise", str(data), str(tmp_path / "pw"), max_rows=50)
    )
    assert json.loads((out / "judge.json").read_text())["max_rows"] == 50
    with pytest.raises(ValueError, match="choose one of"):
        stage.run(stage.TrainJudgeConfig("style", str(data), str(tmp_path / "x")))


def test_real_data_local_judge_smoke(shared_data: Path, tmp_path: Path) -> None:
    out = train_judge(
        "truth", shared_data, tmp_path / "t", encoder=HashingEncoder(64), max_rows=600
    )
    meta = json.loads((out / "judge.json").read_text())
    assert meta["data_files"][0]["path"] == "truthfulqa/finetune_truth.jsonl"
    assert 0.0 <= meta["metrics"]["heldout_accuracy"] <= 1.0


def test_reference_table_features() -> None:
    from trinityx.eval.tasks.truthfulqa import TruthfulQAGenItem

    enc = HashingEncoder(32)
    item = TruthfulQAGenItem("Sky colour?", "blue", ("blue sky",), ("green", "red"))
    table = RefTable.build([item], enc)
    feats = table.features(["Sky colour? ", "Unknown?"], enc(["blue", "blue"]))
    assert feats[0, 0] == 1.0 and feats[0, 3] > 0  # known question: closer to a true reference
    assert not feats[1].any()  # unknown question: no reference signal at all


def test_one_registry_serves_the_eval_stage_and_the_tests(monkeypatch, tmp_path) -> None:
    """`trinityx eval` builds its judges through `JUDGES`, like `build_judge` does."""
    from trinityx.config import from_dict
    from trinityx.eval.config import EvalConfig
    from trinityx.stages.evaluate import build_judge as stage_build_judge

    made: list[dict] = []

    class Recording:
        def __init__(self, **kwargs) -> None:
            made.append(kwargs)

    monkeypatch.setitem(JUDGES, "openai", Backend(Recording, JUDGES["openai"].from_settings))
    cfg = from_dict(
        EvalConfig,
        {
            "model": "base",
            "output_dir": str(tmp_path / "out"),
            "cache_dir": str(tmp_path / "cache"),
            "seed": 7,
            "judge": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
        },
    )
    routed = stage_build_judge(cfg, ["harmful", "prefer"])
    assert isinstance(routed.judges["harmful"], Recording) and len(made) == 1  # built once
    assert made[0]["base_url"] == "http://127.0.0.1:9/v1" and made[0]["seed"] == 7
    assert made[0]["cache_dir"] == tmp_path / "cache" / "judge"
    assert isinstance(build_judge("openai"), Recording)
