"""Conversational rephrasing of routing prompts (RouterSource.rephrase): labels kept, the
original text inside, deterministic, several templates, unknown values rejected."""

from __future__ import annotations

import pytest

from trinityx.config import ComposeConfig, ConfigError, RouterSource, from_dict
from trinityx.data.rephrase import TEMPLATES
from trinityx.data.routing_sets import load_routing


def _cfg(rephrase: str) -> ComposeConfig:
    return from_dict(
        ComposeConfig,
        {
            "experts": {"helpful": "x"},
            "output_dir": "unused",
            "router_data": [
                {
                    "path": "starter:helpful",
                    "label": "helpful",
                    "split": "train",
                    "rephrase": rephrase,
                }
            ],
        },
    )


def test_conversational_keeps_labels_and_text_and_is_deterministic():
    plain = load_routing(_cfg("none"), _cfg("none").router_data)
    talk = load_routing(_cfg("conversational"), _cfg("conversational").router_data)
    assert len(talk) == len(plain) > 20
    assert (
        [t.weights for t in talk] == [p.weights for p in plain] == [{"helpful": 1.0}] * len(plain)
    )
    used = set()
    for p, t in zip(plain, talk, strict=True):
        old, new = p.messages[-1]["content"].strip(), t.messages[-1]["content"]
        assert new != old and (old in new or old[1:] in new)
        used |= {
            i
            for i, tpl in enumerate(TEMPLATES)
            if new.startswith(tpl.split("{")[0]) and tpl.split("}")[-1] in new
        }
    assert len(used) >= 5  # spread over the templates, not one fixed phrase
    again = load_routing(_cfg("conversational"), _cfg("conversational").router_data)
    assert [a.messages for a in again] == [t.messages for t in talk]


def test_unknown_rephrase_is_rejected_naming_the_field():
    with pytest.raises(ConfigError, match="rephrase"):
        _cfg("shouting")
    assert RouterSource(path="x").rephrase == "none"
