"""Presets and the refusal dial: saved in the artifact, listed, used by `generate` and by the
server (`"hhh": {"preset": ...}`), unknown names rejected with the known ones; plus the server's
new routing fields (token texts, per-block gates, the base model's answer)."""

from __future__ import annotations

import httpx
import pytest
import torch

from trinityx.model.composed import TrinityXModel
from trinityx.model.presets import Preset, load_presets, save_preset
from trinityx.serve.app import create_app, serve_in_thread
from trinityx.serve.served import ServedModel
from trinityx.serve.serving import Limits

MSG = [{"role": "user", "content": "hello there"}]
GREEDY = dict(do_sample=False, repetition_penalty=2.0)
W = {"helpful": 0.2, "harmless": 1.0, "honest": 0.5}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tiny_backbone_cfg):
    from helpers_mocae import build, make_expert_dirs

    root = tmp_path_factory.mktemp("presets")
    tx = build(tiny_backbone_cfg, make_expert_dirs(tiny_backbone_cfg, root / "experts"), "token")
    folder = tx.save_pretrained(root / "composed")
    save_preset(folder, "just-right", Preset(weights=W, description="test"))
    save_preset(folder, "careful", Preset(weights=None, refusal_tau=0.0))
    return folder


@pytest.fixture(scope="module")
def tx(artifact, tiny_backbone_cfg):
    return TrinityXModel.from_pretrained(artifact, tiny_backbone_cfg)


def test_presets_saved_listed_and_loaded(artifact, tx, tiny_backbone_cfg, capsys):
    from trinityx.cli import main

    assert list(load_presets(artifact)) == ["just-right", "careful"]
    assert tx.presets["just-right"].weights == W and tx.presets["careful"].refusal_tau == 0.0
    assert main(["presets", str(artifact)]) == 0
    out = capsys.readouterr().out
    assert "just-right: helpful 0.2, harmless 1, honest 0.5 (multiply) - test" in out
    assert "careful: router alone (multiply, refusal dial tau 0)" in out
    # saving the loaded model keeps its presets
    again = TrinityXModel.from_pretrained(
        tx.save_pretrained(artifact.parent / "copy"), tiny_backbone_cfg
    )
    assert again.presets == tx.presets


def test_generate_by_preset_name_and_unknown_name(tx):
    a = tx.generate([MSG], preset="just-right", max_new_tokens=6, **GREEDY)
    b = tx.generate([MSG], hhh_weights=W, max_new_tokens=6, **GREEDY)
    assert a.texts == b.texts and a.routing == b.routing
    with pytest.raises(
        ValueError, match="unknown preset 'nope'; this model's presets: careful, just-right"
    ):
        tx.generate([MSG], preset="nope")


def test_refusal_dial_in_generate(tx):
    """tau = 0 always fires (harmless alone), tau = 1 never (the router alone)."""
    harmless = tx.generate([MSG], hhh_weights={"harmless": 1}, max_new_tokens=6, **GREEDY)
    fired = tx.generate([MSG], refusal_tau=0.0, max_new_tokens=6, **GREEDY)
    assert fired.texts == harmless.texts
    assert fired.routing[0]["gates"] == pytest.approx({"helpful": 0, "harmless": 1, "honest": 0})
    router = tx.generate([MSG], max_new_tokens=6, **GREEDY)
    assert tx.generate([MSG], refusal_tau=1.0, max_new_tokens=6, **GREEDY).texts == router.texts
    # the dial decides per prompt from the calibrated p(harmless)
    p = tx.router_probs(*tx.encode([MSG]))[0, tx.expert_names.index("harmless")].item()
    below = tx.generate([MSG], refusal_tau=p - 1e-4, max_new_tokens=6, **GREEDY)
    above = tx.generate([MSG], refusal_tau=min(p + 1e-4, 1.0), max_new_tokens=6, **GREEDY)
    assert below.texts == harmless.texts and above.texts == router.texts


@pytest.fixture(scope="module")
def url(tx):
    served = ServedModel(tx.model, tx.tokenizer, "tiny", tx=tx)
    app = create_app(served, max_wait_ms=5, limits=Limits(default_max_tokens=8, max_tokens=64))
    with serve_in_thread(app) as u:
        yield u


def post(url, hhh, max_tokens=6):
    body = {
        "messages": MSG,
        "temperature": 0,
        "max_tokens": max_tokens,
        "frequency_penalty": 2.0,
        "hhh": hhh,
    }
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def test_server_lists_and_uses_presets(url):
    card = httpx.get(url + "/v1/models").json()["data"][0]
    assert card["presets"]["just-right"]["weights"] == W
    by_name = post(url, {"preset": "just-right"}).json()["choices"][0]
    by_weights = post(url, {"weights": W}).json()["choices"][0]
    assert by_name["message"] == by_weights["message"]
    assert by_name["routing"]["weights"] == pytest.approx(W)
    assert by_name["routing"]["preset"] == "just-right"
    # a field the request sets overrides the preset's
    over = post(url, {"preset": "just-right", "weights": {"helpful": 1}}).json()["choices"][0]
    assert over["routing"]["weights"] == {"helpful": 1.0, "harmless": 0.0, "honest": 0.0}
    r = post(url, {"preset": "nope"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "hhh" and "careful, just-right" in err["message"]


def test_server_refusal_dial_and_base(url, tx):
    fired = post(url, {"refusal_tau": 0.0}).json()["choices"][0]
    alone = post(url, {"weights": {"harmless": 1}}).json()["choices"][0]
    assert fired["message"] == alone["message"]
    dial = fired["routing"]["refusal_dial"]
    assert dial["fired"] is True and dial["tau"] == 0.0 and 0 < dial["p_harmless"] < 1
    assert fired["routing"]["weights"] == {"helpful": 0.0, "harmless": 1.0, "honest": 0.0}
    kept = post(url, {"refusal_tau": 1.0}).json()["choices"][0]
    assert kept["routing"]["refusal_dial"]["fired"] is False
    assert kept["message"] == post(url, None).json()["choices"][0]["message"]
    # the preset "careful" is the dial at tau 0
    assert post(url, {"preset": "careful"}).json()["choices"][0]["message"] == alone["message"]
    # base: the frozen backbone's answer, gates all zero
    base = post(url, {"base": True}).json()["choices"][0]
    ids, mask = tx.encode([MSG])
    with tx.experts_off():
        ref = tx.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=tx.tokenizer.pad_token_id,
        )
    # frequency_penalty differs from HF's repetition_penalty, so compare on a plain greedy run
    plain = httpx.post(
        url + "/v1/chat/completions",
        timeout=60,
        json={"messages": MSG, "temperature": 0, "max_tokens": 6, "hhh": {"base": True}},
    ).json()
    assert plain["choices"][0]["message"]["content"] == tx.tokenizer.decode(
        ref[0, ids.shape[1] :], skip_special_tokens=True
    )
    assert set(base["routing"]["gates"].values()) == {0.0}
    r = post(url, {"base": True, "weights": W})
    assert r.status_code == 400 and "hhh.base" in r.json()["error"]["message"]


def test_server_per_token_texts_and_block_gates(url, tx):
    r = post(url, {"weights": W, "per_token": True}, max_tokens=5).json()["choices"][0]
    rt = r["routing"]
    assert "".join(rt["tokens"]) == r["message"]["content"]
    S = len(rt["tokens"])
    assert len(rt["per_token"]) == S and len(rt["per_layer"]) == S
    n_blocks = tx.model.config.num_hidden_layers
    assert rt["layers"] == [f"block {i}" for i in range(n_blocks)]
    assert all(len(t) == n_blocks and all(len(b) == 3 for b in t) for t in rt["per_layer"])
    # every block routes the same number of linears here, so the mean of the blocks is the
    # token's gate vector
    names = list(rt["gates"])
    for t in range(S):
        mean = torch.tensor(rt["per_layer"][t]).mean(0)
        assert mean.tolist() == pytest.approx([rt["per_token"][t][n] for n in names], abs=1e-3)


def test_generate_command_uses_presets_weights_and_stdin(artifact, tx, capsys, monkeypatch):
    """`trinityx generate` answers as `generate` does for a preset, HHH weights and stdin."""
    import io
    import json

    from trinityx.cli import main

    want = tx.generate(
        ["hello there", "hi"], preset="just-right", max_new_tokens=5, do_sample=False
    )
    assert (
        main(
            [
                "generate",
                str(artifact),
                "hello there",
                "hi",
                "--preset",
                "just-right",
                "--max-new-tokens",
                "5",
                "--json",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["hello there", "hi"]
    assert [r["text"] for r in rows] == [t.strip() for t in want.texts]
    assert rows[0]["routing"]["weights"] == pytest.approx(W)

    monkeypatch.setattr("sys.stdin", io.StringIO("hello there\n\n"))
    assert (
        main(
            [
                "generate",
                str(artifact),
                "-",
                "--hhh",
                "harmless=1,helpful=0.5",
                "--max-new-tokens",
                "5",
                "--show-routing",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    one = tx.generate(
        ["hello there"],
        hhh_weights={"harmless": 1, "helpful": 0.5},
        max_new_tokens=5,
        do_sample=False,
    )
    assert out.splitlines()[0] == one.texts[0].strip()
    assert "[gates: helpful" in out and "| router: helpful" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hhh", "helpful"], "expected name=value pairs"),
        (["--hhh", "helpful=lots"], "helpful='lots' is not a number"),
        (["--hhh", "kind=1"], "unknown HHH dimension"),
        (["--hhh", "harmless=-1"], "negative weight"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--preset", "careful", "--refusal-tau", "0.5"], "comes with the preset"),
    ],
)
def test_generate_command_errors(artifact, argv, message, capsys):
    from trinityx.cli import main

    try:
        code = main(["generate", str(artifact), "hello", *argv])
    except SystemExit as e:  # argparse type errors exit 2 with the message on stderr
        code = e.code
    assert code == 2
    assert message in capsys.readouterr().err
