"""Memory of the logits in a response loss: full (B, T, V) logits against the chunked LM head.

The held-out and router LM losses used to build the whole float32 logits tensor and a
log_softmax copy of it; model/lm_head.py scores response tokens only, in chunks under
`backbone.logits_budget_mb`. This measures the peak resident memory *added* by one loss
computation (a thread samples /proc/self/statm every 2 ms), for both ways, on one batch of B
rows of T tokens whose second half is the response:

    OMP_NUM_THREADS=1 python benchmarks/logits_memory.py --backbone gemma3-270m --rows 4 --tokens 128
    python benchmarks/logits_memory.py --backbone tiny-random-gemma3  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import torch

from trinityx.config import BackboneConfig
from trinityx.data.formatting import IGNORE_INDEX
from trinityx.model.backbone import load_backbone
from trinityx.model.lm_head import response_nll

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_added_mb(fn) -> tuple[float, float, object]:
    """(peak RSS above the start in MB, seconds, fn's result)."""
    start, peak, stop = _rss(), [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    t0 = time.time()
    out = fn()
    dt = time.time() - t0
    stop.set()
    t.join()
    return (max(peak[0], _rss()) - start) / 2**20, dt, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="gemma3-270m")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--budget-mb", type=float, default=512.0)
    a = ap.parse_args()
    b = load_backbone(BackboneConfig(name=a.backbone, device="cpu"))
    V = b.model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, V - 10, (a.rows, a.tokens), generator=g)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, : a.tokens // 2] = IGNORE_INDEX

    @torch.no_grad()
    def full() -> float:
        z = b.model(input_ids=ids, attention_mask=mask).logits
        return float(
            torch.nn.functional.cross_entropy(
                z[:, :-1].float().reshape(-1, V), labels[:, 1:].reshape(-1), reduction="sum"
            )
        )

    @torch.no_grad()
    def chunked() -> float:
        return float(response_nll(b.model, ids, mask, labels, a.budget_mb)[0])

    with torch.no_grad():  # warm-up: first-call allocations are not the loss's
        b.model(input_ids=ids[:1, :8])
    m_chunk, t_chunk, v_chunk = peak_added_mb(chunked)
    m_full, t_full, v_full = peak_added_mb(full)
    print(
        json.dumps(
            {
                "backbone": a.backbone,
                "vocab": V,
                "rows": a.rows,
                "tokens": a.tokens,
                "logits_fp32_mb": a.rows * a.tokens * V * 4 / 2**20,
                "full": {"peak_added_mb": round(m_full), "seconds": round(t_full, 2)},
                "chunked": {
                    "budget_mb": a.budget_mb,
                    "peak_added_mb": round(m_chunk),
                    "seconds": round(t_chunk, 2),
                },
                "nll_equal": abs(v_full - v_chunk) <= 1e-3 * abs(v_full),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
