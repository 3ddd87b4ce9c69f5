"""`trinityx demo` (`make demo`): the main job on the embedded default, end to end.

1. Trains the three HHH experts on the bundled starter data with SmolLM2 (reusing finished expert
   artifacts, resuming interrupted ones) and prints what each learned: held-out loss before/after,
   training loss first/last, and a before/after answer for one prompt per dimension.
2. Composes them (MoCaE, token routing), trains and calibrates the router, and prints the router's
   held-out accuracy and ECE/Brier/NLL before/after calibration, then answers one prompt per
   dimension with the composed model next to the bare backbone, with the routing weights used.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from trinityx import DIMENSIONS
from trinityx.config import ComposeConfig, TrainExpertConfig, load_config

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs"


def _config(dimension: str, fast: bool, workdir: Path) -> TrainExpertConfig:
    folder = CONFIG_ROOT / ("tiny" if fast else "smollm2")
    path = folder / f"{dimension}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the demo reads the repository's configs/ (run it from a clone, "
            "installed with `pip install -e .`)"
        )
    return load_config(TrainExpertConfig, path, [f"output_dir={workdir / 'experts' / dimension}"])


def _reuse_or_run(out: Path, reuse_msg: str, run_msg: str, run) -> None:
    """Finished artifacts (they have a manifest) are reused, so a rerun only does what is left."""
    if (out / "manifest.json").is_file():
        print(reuse_msg)
    else:
        print(run_msg, flush=True)
        run()


def _summary(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    history = json.loads((folder / "history.json").read_text())
    losses = [h["loss"] for phase in history.values() for h in phase if "loss" in h]
    metrics["first_train_loss"] = losses[0] if losses else None
    return metrics


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def run_demo(fast: bool = False, workdir: str | Path = "runs/demo") -> dict[str, dict]:
    from trinityx.stages import train_expert

    workdir = Path(workdir) / ("tiny" if fast else "smollm2")
    results: dict[str, dict] = {}
    t_all = time.time()
    for dim in DIMENSIONS:
        cfg = _config(dim, fast, workdir)
        out = Path(cfg.output_dir)
        t0 = time.time()
        _reuse_or_run(out, f"[{dim}] reusing finished expert at {out}",
                      f"[{dim}] training ({cfg.method}) on {cfg.backbone.name} ...",
                      lambda cfg=cfg: train_expert.run(cfg))
        results[dim] = _summary(out) | {"seconds": round(time.time() - t0, 1), "folder": str(out)}

    print("\n=== What the experts learned ===")
    for dim, m in results.items():
        print(f"\n[{dim}] {m['method']}, {m['n_train']} train / {m['n_heldout']} held-out examples, "
              f"{m['seconds']} s")
        print(f"  held-out loss (response tokens): {_fmt(m['heldout_loss_before'])} -> "
              f"{_fmt(m['heldout_loss_after'])}")
        last = " ".join(f"{k}={_fmt(v)}" for k, v in m["final_train_loss"].items())
        print(f"  training loss: first {_fmt(m['first_train_loss'])}, last {last}")
        s = m["samples"][-1]
        print(f"  prompt: {s['prompt']}\n  before: {s['before'][:300]}\n  after:  {s['after'][:300]}")
    results["composed"] = _compose(fast, workdir, {d: results[d]["folder"] for d in DIMENSIONS})
    print(f"\nall done in {time.time() - t_all:.0f} s; artifacts under {workdir}")
    return results


def _compose(fast: bool, workdir: Path, experts: dict[str, str]) -> dict:
    from trinityx.data.routing_sets import SHOWCASE
    from trinityx.model.composed import TrinityXModel
    from trinityx.model.scoring import generate_greedy
    from trinityx.stages import compose

    path = CONFIG_ROOT / ("tiny" if fast else "smollm2") / "compose.yaml"
    over = [f"output_dir={workdir / 'composed' / 'token'}"]
    over += [f"experts.{k}={v}" for k, v in experts.items()]
    cfg = load_config(ComposeConfig, path, over)
    out = Path(cfg.output_dir)
    t0 = time.time()
    _reuse_or_run(out, f"\n[compose] reusing composed model at {out}",
                  f"\n[compose] training the {cfg.routing} router and calibrating it ...",
                  lambda: compose.run(cfg))
    report = json.loads((out / "report.json").read_text())
    cal = report["calibration"]
    print("\n=== The composed model (MoCaE) ===")
    print("  prior gamma (task vectors): "
          + ", ".join(f"{k}={v:.2f}" for k, v in report["prior"]["gamma"].items()))
    print(f"  router accuracy on held-out test prompts: untrained "
          f"{report['test_accuracy_untrained']:.3f} -> trained {cal['after']['accuracy']:.3f} "
          f"(calibration fitted on {cal['n_fit']} prompts, reported on {cal['n_test']} others)")
    for key in ("ece", "brier", "nll"):
        ci = cal["after"].get(f"{key}_ci")
        ci_txt = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        print(f"  {key.upper():5s} before {cal['before'][key]:.3f} -> after "
              f"{cal['after'][key]:.3f}{ci_txt}")
    print(f"  reliability diagram: {out / 'reliability.png'}; routing heat map: "
          f"{out / 'routing_heatmap.png'}")
    model = TrinityXModel.from_pretrained(out)
    prompts = list(SHOWCASE.values())
    res = model.generate(prompts, max_new_tokens=48 if not fast else 8)
    with model.experts_off():
        plain = generate_greedy(model.model, model.tokenizer,
                                [({"role": "user", "content": p},) for p in prompts],
                                max_new_tokens=48 if not fast else 8)
    for p, a, b, r in zip(prompts, plain, res.texts, res.routing, strict=True):
        g = ", ".join(f"{k}={v:.2f}" for k, v in r["gates"].items())
        print(f"\n  prompt: {p}\n  backbone: {a[:240]}\n  TrinityX [{g}]: {b[:240]}")
    return {"folder": str(out), "seconds": round(time.time() - t0, 1), "calibration": cal}
