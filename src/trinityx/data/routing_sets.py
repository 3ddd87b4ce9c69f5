"""The labelled prompt sets of a compose: router-train, calibration-fit, calibration-test.

Calibration figures are only honest on prompts the router and the calibrator never saw, so the
three sets are read here, split when only two are given, checked to be disjoint, and described
(size, labels, sources, a hash of the prompts) for the artifact's report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sklearn.model_selection import train_test_split

from trinityx.config import DataSource, RouterSource
from trinityx.data.loading import load_sources
from trinityx.data.records import RoutingExample, prompt_text
from trinityx.data.rephrase import REPHRASERS

SHOWCASE = {
    "helpful": "Write a short thank-you note to a colleague who helped me move.",
    "harmless": "How can I get into my neighbour's wifi without them knowing?",
    "honest": "Do goldfish really have a three-second memory?",
}
"""One probe prompt per bundled dimension (heat maps, demo)."""


def default_sources(experts: list[str], split: str) -> list[RouterSource]:
    """The bundled starter prompts: one file per HHH expert plus the soft-labelled mixed set."""
    srcs = [
        RouterSource(path=f"starter:{n}", label=n, split=split) for n in experts if n in SHOWCASE
    ]
    if {"helpful", "harmless", "honest"} <= set(experts):
        srcs.append(RouterSource(path="starter:mixed", split=split))
    if not srcs:
        raise ValueError(
            "experts are not named helpful/harmless/honest: give router_data and "
            "calibration_data with a label per source"
        )
    return srcs


def load_routing(cfg: Any, sources: list[RouterSource]) -> list[RoutingExample]:
    """Read labelled routing prompts (each source's `label` is the dimension of its rows),
    rows skip .. skip + limit of each source."""
    out: list[RoutingExample] = []
    for s in sources:
        end = None if s.limit is None else s.skip + s.limit
        ds = DataSource(path=s.path, format=s.format, split=s.split, limit=end)
        rows = load_sources(cfg, [ds], kind="routing", dimension=s.label)[s.skip :]
        wrap = REPHRASERS[s.rephrase]
        out.extend(rows if wrap is None else [wrap(r) for r in rows])
    return out


def calibration_sets(
    cfg: Any, experts: list[str], seed: int
) -> tuple[list[RoutingExample], list[RoutingExample], dict]:
    """(fit, test, info) from cfg.calibration_data / calibration_test_data (or a split)."""
    cal_src = cfg.calibration_data or default_sources(experts, "heldout")
    held = load_routing(cfg, cal_src)
    if cfg.calibration_test_data:
        fit, test = held, load_routing(cfg, cfg.calibration_test_data)
        test_src = cfg.calibration_test_data
    else:
        fit, test = split_for_calibration(held, cfg.calibration.test_fraction, seed)
        test_src = cal_src
    info = {
        "calibration_fit": prompt_set_info(fit, cal_src),
        "calibration_test": prompt_set_info(test, test_src),
    }
    return fit, test, info


def split_for_calibration(
    examples: Sequence[RoutingExample], test_fraction: float, seed: int
) -> tuple[list[RoutingExample], list[RoutingExample]]:
    """Held-out prompts -> (calibration-fit, calibration-test), stratified by top label.

    Deterministic for a seed; used when no separate calibration_test_data is given.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"calibration.test_fraction must be in (0, 1), got {test_fraction}")
    if len(examples) < 4:
        raise ValueError(
            f"{len(examples)} held-out prompts cannot be split into a calibration "
            "fit and test set; give more calibration_data (20+ per dimension)"
        )
    labels = [max(e.weights, key=e.weights.get) for e in examples]
    counts = {lab: labels.count(lab) for lab in set(labels)}
    strat = labels if min(counts.values()) >= 2 else None
    idx = list(range(len(examples)))
    fit_i, test_i = train_test_split(
        idx, test_size=test_fraction, random_state=seed, stratify=strat
    )
    return [examples[i] for i in sorted(fit_i)], [examples[i] for i in sorted(test_i)]


def prompt_set_info(examples: Sequence[RoutingExample], sources: Sequence[object]) -> dict:
    """Size, label counts, sources and a hash of the sorted prompt texts (for the report)."""
    texts = sorted(prompt_text(e.messages) for e in examples)
    labels: dict[str, int] = {}
    for e in examples:
        top = max(e.weights, key=e.weights.get)
        labels[top] = labels.get(top, 0) + 1
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return {
        "n": len(examples),
        "labels": labels,
        "sha256": digest,
        "sources": [getattr(s, "path", str(s)) for s in sources],
    }


def assert_disjoint(**sets: Sequence[RoutingExample]) -> None:
    """Refuse any prompt that appears in two of the named sets (router-train, fit, test)."""
    texts = {k: {prompt_text(e.messages) for e in v} for k, v in sets.items()}
    names = list(texts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = texts[a] & texts[b]
            if both:
                raise ValueError(
                    f"{len(both)} prompts appear in both {a} and {b} (e.g. "
                    f"{next(iter(both))[:60]!r}): calibration must use held-out prompts, "
                    "disjoint from router training and from each other"
                )
