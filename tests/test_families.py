"""Both backbone families (tiny Llama, tiny Gemma 3) through the paths that used to assume Llama.

Each test runs once per family (`family_cfg`): chat template and its label, target-module
checks, tied embeddings, chunked LM-head scoring against full logits (values and gradients),
fused MoCaE layers against the naive loop, plain PEFT against one-hot composition, the pooling
cut, and log-likelihood scoring (shared prefix, padded, budget-split) across Gemma's sliding
window. Expert training, compose and the exports are parametrised in their own test files.
"""

from __future__ import annotations

import pytest
import torch
from helpers_mocae import PROMPTS, build, make_expert_dirs, max_diff, peft_logits

from trinityx.data.formatting import IGNORE_INDEX, collate, encode_sft, prompt_string
from trinityx.data.records import SFTExample
from trinityx.model import lm_head
from trinityx.model.backbone import load_backbone
from trinityx.model.targets import check_target_modules
from trinityx.model.tiny import TINY_SLIDING_WINDOW

EXAMPLES = [
    SFTExample(
        messages=({"role": "user", "content": "What is the capital of France? " * k},),
        response="The capital of France is Paris. " * k,
    )
    for k in (1, 3, 2)
]


@pytest.fixture(scope="module")
def family_experts(family_cfg, tmp_path_factory):
    return make_expert_dirs(family_cfg, tmp_path_factory.mktemp(f"experts-{family_cfg.name}"))


def _batch(tok):
    return collate([encode_sft(tok, ex, 128) for ex in EXAMPLES], tok.pad_token_id)


def test_template_is_recorded_and_ties_hold(family_cfg):
    b = load_backbone(family_cfg)
    gemma = "gemma" in family_cfg.name
    assert b.chat_template == ("plain" if gemma else "chatml")
    assert b.model.get_output_embeddings().weight is b.model.get_input_embeddings().weight
    enc = encode_sft(b.tokenizer, EXAMPLES[0])
    text = prompt_string(b.tokenizer, EXAMPLES[0].messages)
    if gemma:  # BOS first, the answer after "Assistant:", the turn closed by <eos>
        assert text.startswith("<bos>User: ") and text.endswith("\nAssistant:")
        assert enc["input_ids"][0] == b.tokenizer.bos_token_id
    assert enc["labels"][-1] == b.tokenizer.eos_token_id  # the expert learns to stop
    answer = [t for t in enc["labels"] if t != IGNORE_INDEX]
    assert (
        b.tokenizer.decode(answer, skip_special_tokens=True).strip() == EXAMPLES[0].response.strip()
    )


def test_target_modules_are_checked_by_name(family_cfg):
    model = load_backbone(family_cfg).model
    counts = check_target_modules(model, ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"])
    assert counts["q_proj"] == model.config.num_hidden_layers
    with pytest.raises(ValueError, match=r"'c_attn'.*linear layers are \['down_proj'"):
        check_target_modules(model, ["q_proj", "c_attn"])
    with pytest.raises(ValueError, match="tied to the input embeddings"):
        check_target_modules(model, ["lm_head"])


@pytest.mark.parametrize("budget_mb", [512.0, 0.001])  # one chunk; one token per chunk
def test_chunked_nll_equals_full_logits(family_cfg, budget_mb):
    b = load_backbone(family_cfg)
    batch = _batch(b.tokenizer)
    logits = b.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    want = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        batch["labels"][:, 1:].reshape(-1),
        reduction="sum",
    )
    got, n = lm_head.response_nll(
        b.model, batch["input_ids"], batch["attention_mask"], batch["labels"], budget_mb
    )
    assert n == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_chunked_nll_gradients_equal_full_logits(family_cfg, family_experts):
    """Checkpointed chunks (recomputed in backward) give the router the same gradients."""
    tx = build(family_cfg, family_experts, "token", router_init_std=1.0)
    params = tx.router_parameters()
    batch = _batch(tx.tokenizer)
    grads = []
    for chunked in (False, True):
        if chunked:
            out = tx.teacher_forced(
                batch["input_ids"],
                batch["attention_mask"],
                logits_to_keep=1,
                output_hidden_states=True,
            )
            nll, _ = lm_head.labelled_nll(tx.model, out.hidden_states[-1], batch["labels"], 0.001)
        else:
            z = tx.logits(batch["input_ids"], batch["attention_mask"])
            nll = torch.nn.functional.cross_entropy(
                z[:, :-1].reshape(-1, z.shape[-1]),
                batch["labels"][:, 1:].reshape(-1),
                reduction="sum",
            )
        grads.append(torch.autograd.grad(nll, params))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_micro_batches_keep_the_configured_batch():
    gemma_vocab, smollm2_vocab = 262_144, 49_152  # 1 MB and 0.19 MB of float32 per position
    assert lm_head.micro_batch(8, 192, smollm2_vocab, 512) == 8  # shipped SmolLM2 configs unchanged
    assert lm_head.micro_batch(8, 192, gemma_vocab, 512) == 2  # 2 x 192 MB per forward
    assert lm_head.micro_batch(8, 2 * 192, gemma_vocab, 512) == 1  # DPO: chosen + rejected
    assert lm_head.micro_batch(6, 100, gemma_vocab, 512) == 3  # 5 fit, 3 is the largest divisor
    assert lm_head.tokens_per_chunk(gemma_vocab, 512) == 512


def test_fused_layers_equal_the_naive_loop(family_cfg, family_experts):
    tx = build(family_cfg, family_experts, "none")
    g = torch.tensor([0.7, -0.4, 1.3])
    torch.manual_seed(0)
    for name, layer in tx.layers.items():
        x = torch.randn(2, 5, layer.base_layer.in_features)
        tx.state.gates = g
        with torch.no_grad():
            fused = layer(x)
        tx.state.reset()
        torch.testing.assert_close(fused, layer.naive_forward(x, g), rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("expert", ["helpful", "honest"])
def test_one_hot_composition_equals_plain_peft(family_cfg, family_experts, expert):
    tx = build(family_cfg, family_experts, "token", router_init_std=1.0)
    ids, mask = tx.encode(PROMPTS)
    with torch.no_grad():
        got = tx.logits(ids, mask, hhh_weights={expert: 1.0}, weight_mode="fixed")
    want = peft_logits(family_cfg, family_experts[expert], ids, mask)
    assert max_diff(got, want, mask) <= 1e-5


def test_pooling_cut_equals_hidden_states(family_cfg, family_experts):
    """Cutting the stack after pool_layer (Gemma: layer_types indexed per block) is exact."""
    tx = build(family_cfg, family_experts, "sequence", pool_layer=1)
    long = "Tell me everything about the capital of France and its rivers, please. " * 2
    ids, mask = tx.encode(["hi", long])
    assert ids.shape[1] > TINY_SLIDING_WINDOW  # the sliding layer really slides
    feats = tx.pooled_features(ids, mask)
    with torch.no_grad(), tx.experts_off():
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        out = tx.model.base_model(
            input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True
        )
    h = out.hidden_states[1].float()
    want = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(feats, want, rtol=1e-5, atol=1e-5)


def test_loglikelihood_paths_agree_across_the_sliding_window(family_cfg):
    from trinityx.eval.model_api import HFEvalModel

    b = load_backbone(family_cfg)
    primer = "Q: What is the capital of France? A: Paris. Q: Where does water boil? A: "
    requests = [
        (primer + "at sea level", " 100 degrees."),
        (primer + "at sea level", " Paris."),
        (primer + "in the sky", " I don't know."),
        ("", "Hello there."),
    ]
    em = HFEvalModel(b.model, b.tokenizer, "m", "fp")
    assert len(b.tokenizer(primer)["input_ids"]) > TINY_SLIDING_WINDOW
    shared = em.loglikelihood(requests, batch_size=4)
    em.prefix_sharing = False
    padded = em.loglikelihood(requests, batch_size=4)
    em.logits_budget_mb = 1e-4  # one row per pass
    split = em.loglikelihood(requests, batch_size=4)
    ref = []
    for c, x in requests:  # one unpadded forward per request
        from trinityx.eval.model_api import encode_pair

        ctx, cont = encode_pair(b.tokenizer, c, x)
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            lp = torch.log_softmax(b.model(input_ids=ids).logits[0, len(ctx) - 1 : -1], -1)
        ref.append(float(lp.gather(-1, torch.tensor(cont)[:, None]).sum()))
    for got in (shared, padded, split):
        assert got == pytest.approx(ref, abs=1e-3)


def test_a_model_whose_logits_are_not_its_head_of_the_hidden_state_is_refused(tiny_backbone_cfg):
    """Chunked scoring recomputes logits from the final hidden state; a family that does more
    than softcap(lm_head(h)) (here: Llama told to softcap, which its forward ignores) is caught
    by the one-row check instead of scored wrongly."""
    b = load_backbone(tiny_backbone_cfg)
    batch = _batch(b.tokenizer)
    b.model.config.final_logit_softcapping = 0.05
    with pytest.raises(RuntimeError, match="does not reproduce the model's logits"):
        lm_head.response_nll(b.model, batch["input_ids"], batch["attention_mask"], batch["labels"])


def test_plain_text_scoring_starts_with_bos_where_the_tokenizer_adds_one(family_cfg):
    """Gemma's tokenizer starts text with <bos> (and Gemma needs it); SmolLM2's does not."""
    from trinityx.eval.model_api import encode_pair

    tok = load_backbone(family_cfg).tokenizer
    gemma = "gemma" in family_cfg.name
    bos = tok.bos_token_id
    ctx, cont = encode_pair(tok, "Q: What is the capital of France?\nA:", " Paris")
    assert (ctx[0] == bos) == gemma and bos not in cont
    templated, _ = encode_pair(tok, prompt_string(tok, EXAMPLES[0].messages), " Paris")
    assert templated.count(bos) == (1 if gemma else templated.count(bos))  # never a second BOS
    if gemma:
        assert templated[0] == bos
