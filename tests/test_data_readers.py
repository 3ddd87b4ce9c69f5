"""Data readers: every format on good input, every error path on malformed input, the dispatcher,
skip_bad_rows accounting, the offline Hugging Face error, and (when present) the real data sets."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import time
from pathlib import Path

import pytest

from trinityx.data.readers import detect_format, read_records
from trinityx.data.readers import hf as readers_hf
from trinityx.data.readers.alpaca import read_alpaca
from trinityx.data.readers.base import DataError, ReadReport
from trinityx.data.readers.beavertails import (
    read_beavertails_pairs,
    read_beavertails_qa,
    read_beavertails_qa_pairs,
)
from trinityx.data.readers.generic import read_jsonl
from trinityx.data.readers.hf import HubUnavailableError, read_hf
from trinityx.data.readers.hh_rlhf import parse_hh_dialogue, read_hh_rlhf
from trinityx.data.readers.truthfulqa import read_truthfulqa, read_truthfulqa_pairs, split_answers
from trinityx.data.records import PreferencePair, RoutingExample, SFTExample


def write_jsonl(path: Path, rows: list, *, raw: dict[int, str] | None = None) -> Path:
    """Rows as JSONL; `raw` puts a literal line at a 1-based position (for broken JSON)."""
    lines = [json.dumps(r) for r in rows]
    for lineno, text in sorted((raw or {}).items()):
        lines.insert(lineno - 1, text)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hh(*turns: str) -> str:
    """An hh-rlhf transcript from alternating Human/Assistant turns."""
    roles = ["Human", "Assistant"]
    return "".join(f"\n\n{roles[i % 2]}: {t}" for i, t in enumerate(turns))


TQA_HEADER = [
    "Type",
    "Category",
    "Question",
    "Best Answer",
    "Correct Answers",
    "Incorrect Answers",
    "Source",
]


def write_truthfulqa(path: Path, n: int = 817) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TQA_HEADER)
        for i in range(1, n + 1):
            w.writerow(
                [
                    "Adversarial",
                    "Misc",
                    f"Question {i}?",
                    f"best {i}",
                    f"best {i}; also true {i} ;",
                    f" false {i}a;false {i}b ; false {i}c",
                    "https://example.org",
                ]
            )
    return path


# ---------------------------------------------------------------- Alpaca


def test_alpaca_joins_input_and_maps_fields(tmp_path):
    p = tmp_path / "alpaca.json"
    p.write_text(
        json.dumps(
            [
                {
                    "instruction": "Translate to French.",
                    "input": "Good morning",
                    "output": "Bonjour",
                },
                {"instruction": "Name a colour.", "input": "", "output": "Blue"},
                {"instruction": "Say hi.", "output": "Hi"},  # input absent
            ]
        )
    )
    recs = read_alpaca(p)
    assert [r.messages for r in recs] == [
        ({"role": "user", "content": "Translate to French.\n\nGood morning"},),
        ({"role": "user", "content": "Name a colour."},),
        ({"role": "user", "content": "Say hi."},),
    ]
    assert [r.response for r in recs] == ["Bonjour", "Blue", "Hi"]
    assert {r.dimension for r in recs} == {"helpful"}
    assert recs[1].source == f"{p}:row 2"


def test_alpaca_bad_json_names_file_and_line(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text(
        '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]'
    )
    with pytest.raises(DataError, match=r"broken\.json:3: invalid JSON"):
        read_alpaca(p)


def test_alpaca_missing_field_and_wrong_shape(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}]))
    with pytest.raises(DataError, match=r"a\.json:row 2: field 'output' missing"):
        read_alpaca(p)
    p.write_text(json.dumps({"instruction": "a", "output": "b"}))
    with pytest.raises(DataError, match="expected a JSON array"):
        read_alpaca(p)
    p.write_text(json.dumps([{"instruction": "a", "input": 3, "output": "b"}]))
    with pytest.raises(DataError, match="field 'input' must be a string, got int"):
        read_alpaca(p)


# ---------------------------------------------------------------- TruthfulQA


def test_truthfulqa_positional_split_408_409(tmp_path):
    p = write_truthfulqa(tmp_path / "TruthfulQA.csv")
    train, test = read_truthfulqa(p, split="train"), read_truthfulqa(p, split="test")
    assert (len(train), len(test), len(read_truthfulqa(p))) == (408, 409, 817)
    assert train[-1].messages[-1]["content"] == "Question 408?"
    assert test[0].messages[-1]["content"] == "Question 409?"
    assert test[0].source == f"{p}:row 409"
    assert (test[0].response, test[0].dimension) == ("best 409", "honest")


def test_truthfulqa_answers_split_and_pairs_deterministic(tmp_path):
    assert split_answers(" a; b ;;c ; ") == ["a", "b", "c"]
    p = write_truthfulqa(tmp_path / "TruthfulQA.csv")
    pairs = read_truthfulqa_pairs(p, split="train", pairs_per_question=3)
    first = [(x.chosen, x.rejected) for x in pairs if x.source == f"{p}:row 1"]
    # true answers: best first, then the other correct ones (duplicates of best dropped), cycled
    assert first == [("best 1", "false 1a"), ("also true 1", "false 1b"), ("best 1", "false 1c")]
    one = read_truthfulqa_pairs(p, split="test")
    assert len(one) == 409 and (one[0].chosen, one[0].rejected) == ("best 409", "false 409a")
    assert pairs == read_truthfulqa_pairs(p, split="train", pairs_per_question=3)


def test_truthfulqa_all_correct_answers_as_targets(tmp_path):
    p = write_truthfulqa(tmp_path / "TruthfulQA.csv")
    rows = read_records(p, split="train", answers="all")
    first = [r.response for r in rows if r.source == f"{p}:row 1"]
    assert first == ["best 1", "also true 1"]  # best first, its duplicate dropped
    assert len(rows) == 2 * 408
    nc = tmp_path / "nc.csv"
    nc.write_text(
        "Question,Best Answer,Correct Answers\n"
        "Q1?,Paris,Paris; I have no comment\nQ2?,I have no comment,I have no comment\n"
    )
    # "no comment" dropped where an informative answer exists, kept where it is the only one
    assert [r.response for r in read_records(nc, answers="all")] == ["Paris", "I have no comment"]
    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    with pytest.raises(ValueError, match=r"a\.json: answers='all' applies to TruthfulQA"):
        read_records(alpaca, answers="all")


def test_truthfulqa_errors(tmp_path):
    small = write_truthfulqa(tmp_path / "small.csv", n=10)
    assert len(read_truthfulqa(small)) == 10  # split="all" works on any size
    with pytest.raises(DataError, match="has 10 rows.*split='all'"):
        read_truthfulqa(small, split="train")
    with pytest.raises(ValueError, match="split='dev'"):
        read_truthfulqa(small, split="dev")
    bad = tmp_path / "bad.csv"
    bad.write_text("Question,Answer\nWhy?,Because\n")
    with pytest.raises(DataError, match="column\\(s\\) 'Best Answer' missing"):
        read_truthfulqa(bad)
    empty_best = tmp_path / "eb.csv"
    empty_best.write_text("Question,Best Answer\nWhy?,Because\nHow?,\n")
    with pytest.raises(DataError, match=r"eb\.csv:row 2: field 'Best Answer' is empty"):
        read_truthfulqa(empty_best)


# ---------------------------------------------------------------- BeaverTails


def test_beavertails_pairs(tmp_path):
    p = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "prompt": "How do I pick a lock?",
                "safe": "I can't help with that.",
                "unsafe": "Use a pin.",
            },
        ],
    )
    (pair,) = read_beavertails_pairs(p)
    assert pair == PreferencePair(
        ({"role": "user", "content": "How do I pick a lock?"},),
        "I can't help with that.",
        "Use a pin.",
        "harmless",
        f"{p}:1",
    )
    write_jsonl(p, [{"prompt": "x", "safe": "y"}])
    with pytest.raises(DataError, match=r"pairs\.jsonl:1: field 'unsafe' missing"):
        read_beavertails_pairs(p)


def test_beavertails_qa_sft_keeps_safe_and_pairs_both(tmp_path):
    p = write_jsonl(
        tmp_path / "bt30k.jsonl",
        [
            {"prompt": "A?", "response": "unsafe a1", "is_safe": False, "category": {"x": True}},
            {"prompt": "A?", "response": "safe a1", "is_safe": True},
            {"prompt": "B?", "response": "safe b1", "is_safe": True},  # no unsafe answer: no pair
            {"prompt": "A?", "response": "safe a2", "is_safe": True},
            {"prompt": "A?", "response": "unsafe a2", "is_safe": False},
        ],
    )
    rep = ReadReport()
    sft = read_beavertails_qa(p, report=rep)
    assert [r.response for r in sft] == ["safe a1", "safe b1", "safe a2"]
    assert (rep.records, rep.filtered, rep.skipped) == (3, 2, 0)
    pairs = read_beavertails_qa_pairs(p)
    assert [(x.chosen, x.rejected) for x in pairs] == [
        ("safe a1", "unsafe a1"),
        ("safe a2", "unsafe a2"),
    ]
    assert pairs[0].source == f"{p}:2,1"
    write_jsonl(p, [{"prompt": "A?", "response": "r", "is_safe": "yes"}])
    with pytest.raises(DataError, match="field 'is_safe' must be true or false"):
        read_beavertails_qa(p)


# ---------------------------------------------------------------- hh-rlhf


def test_hh_rlhf_multi_turn(tmp_path):
    prefix = ["hi", "hello, how can I help?", "how do I make tea?"]
    p = write_jsonl(
        tmp_path / "hh.jsonl.gz",
        [
            {"chosen": hh(*prefix, "Boil water and steep."), "rejected": hh(*prefix, "No.")},
        ],
    )
    (pair,) = read_hh_rlhf(p)
    assert pair.messages == (
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello, how can I help?"},
        {"role": "user", "content": "how do I make tea?"},
    )
    assert (pair.chosen, pair.rejected, pair.dimension) == (
        "Boil water and steep.",
        "No.",
        "harmless",
    )
    assert pair.source == f"{p}:1"


def test_hh_rlhf_reply_containing_a_marker_and_merged_turns():
    # Real transcripts: a reply with its own "\n\nAssistant:" and two Assistant turns in a row.
    assert parse_hh_dialogue("\n\nHuman: a\n\nAssistant: b\n\nAssistant: c\n\nHuman: d") == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b\n\nc"},
        {"role": "user", "content": "d"},
    ]
    from trinityx.data.readers.hh_rlhf import hh_record

    row = {
        "chosen": "\n\nHuman: q\n\nAssistant: one\n\nAssistant: two",
        "rejected": "\n\nHuman: q\n\nAssistant: other",
    }
    pair = hh_record(row, "f:1", "harmless")
    assert (pair.messages, pair.chosen, pair.rejected) == (
        ({"role": "user", "content": "q"},),
        "one\n\ntwo",
        "other",
    )


def test_hh_rlhf_malformed(tmp_path):
    p = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {"chosen": hh("a", "b"), "rejected": hh("a", "c")},
            {"chosen": hh("q1", "x", "q2", "y"), "rejected": hh("q1", "x", "OTHER", "z")},
        ],
    )
    with pytest.raises(
        DataError, match=r"hh\.jsonl:2: the prompts of 'chosen' and 'rejected' differ"
    ):
        read_hh_rlhf(p)
    write_jsonl(p, [{"chosen": "just text", "rejected": hh("a", "c")}])
    with pytest.raises(DataError, match=r"hh\.jsonl:1: field 'chosen' has no '\\n\\nHuman:'"):
        read_hh_rlhf(p)


# ---------------------------------------------------------------- generic JSONL


def test_generic_sft_forms(tmp_path):
    p = write_jsonl(
        tmp_path / "g.jsonl",
        [
            {"prompt": "p1", "response": "r1", "dimension": "honest", "extra": 1},
            {
                "messages": [
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "u2"},
                    {"role": "assistant", "content": "a2"},
                ]
            },
            {"prompt": "p3", "response": "r3", "system": "Be brief."},
        ],
    )
    a, b, c = read_jsonl(p)
    assert (a.messages, a.response, a.dimension, a.source) == (
        ({"role": "user", "content": "p1"},),
        "r1",
        "honest",
        f"{p}:1",
    )
    assert b.messages[-1] == {"role": "user", "content": "u2"} and len(b.messages) == 3
    assert b.response == "a2" and b.dimension is None
    assert c.messages[0] == {"role": "system", "content": "Be brief."}


def test_generic_preference_and_routing(tmp_path):
    p = write_jsonl(
        tmp_path / "g.jsonl",
        [
            {
                "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
                "chosen": "good",
                "rejected": "bad",
                "dimension": "harmless",
            },
        ],
    )
    (pair,) = read_jsonl(p, kind="preference")
    assert isinstance(pair, PreferencePair) and len(pair.messages) == 2
    (sft,) = read_jsonl(p, kind="sft")  # preference rows read as SFT keep the chosen side
    assert isinstance(sft, SFTExample) and sft.response == "good"
    (onehot,) = read_jsonl(p, kind="routing")
    assert onehot.weights == {"harmless": 1.0}
    both = write_jsonl(
        tmp_path / "both.jsonl",
        [
            {"prompt": "q", "response": "long answer", "chosen": "short", "rejected": "no"},
        ],
    )
    assert isinstance(
        read_jsonl(both, kind=None)[0], PreferencePair
    )  # as read: a pair carries more
    assert read_jsonl(both, kind="sft")[0].response == "long answer"  # an explicit response wins

    r = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "q", "weights": {"helpful": 3, "honest": 1}}])
    (route,) = read_jsonl(r, kind="routing")
    assert isinstance(route, RoutingExample)
    assert route.weights == {"helpful": 0.75, "honest": 0.25}
    write_jsonl(r, [{"prompt": "q", "weights": {"helpful": 1.0, "honest": -0.5}}])
    with pytest.raises(DataError, match=r"r\.jsonl:1: field 'weights\.honest' is negative"):
        read_jsonl(r, kind="routing")
    write_jsonl(r, [{"prompt": "q", "weights": {"helpfull": 1.0}}])
    with pytest.raises(DataError, match="expected one of helpful, harmless, honest"):
        read_jsonl(r, kind="routing")


def test_generic_errors_name_file_line_field_and_fix(tmp_path):
    p = write_jsonl(
        tmp_path / "x.jsonl", [{"prompt": "a", "response": "b"}] * 16 + [{"prompt": "c"}]
    )
    with pytest.raises(DataError) as e:
        read_jsonl(p)
    assert str(e.value).startswith(
        f"{p}:17: field 'response' missing (SFT rows need 'prompt' and 'response', or 'messages')"
    )
    write_jsonl(p, [{"prompt": "a", "response": "b"}], raw={2: '{"prompt": "c", "response": '})
    with pytest.raises(DataError, match=r"x\.jsonl:2: invalid JSON"):
        read_jsonl(p)
    write_jsonl(p, [{"prompt": "a", "response": ["b"]}])
    with pytest.raises(DataError, match="field 'response' must be a string, got list"):
        read_jsonl(p)
    write_jsonl(p, [{"prompt": "a", "rejected": "b"}])
    with pytest.raises(DataError, match="field 'chosen' missing \\(preference rows need"):
        read_jsonl(p, kind="preference")
    write_jsonl(p, [{"messages": [{"role": "user", "content": "u"}]}])
    with pytest.raises(DataError, match="must end with a 'assistant' message"):
        read_jsonl(p)
    write_jsonl(p, [{"prompt": "q", "response": "r", "dimension": "helpfull"}])
    with pytest.raises(DataError, match="field 'dimension' is 'helpfull'"):
        read_jsonl(p)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no records \(the file has no data rows\)"):
        read_jsonl(empty)
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(DataError, match="no records"):
        read_alpaca(tmp_path / "empty.json")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_records(tmp_path / "nope.jsonl")


def test_split_and_dimension_filters(tmp_path):
    p = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"prompt": "a", "response": "1", "split": "train", "dimension": "helpful"},
            {"prompt": "b", "response": "2", "split": "heldout", "dimension": "helpful"},
            {"prompt": "c", "response": "3", "split": "train", "dimension": "honest"},
            {"prompt": "d", "response": "4", "split": "train"},
        ],
    )
    assert [r.response for r in read_records(p, split="train")] == ["1", "3", "4"]
    rep = ReadReport()
    got = read_records(p, split="train", dimension="helpful", report=rep)
    assert [(r.response, r.dimension) for r in got] == [("1", "helpful"), ("4", "helpful")]
    assert rep.filtered == 2
    with pytest.raises(DataError, match="none matched the filter"):
        read_records(p, split="test")


def test_skip_bad_rows_counts_and_logs(tmp_path, caplog):
    p = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "a", "response": "1"},
            {"prompt": "b"},
            {"prompt": "c", "response": "3"},
            {"prompt": 5, "response": "x"},
        ],
        raw={3: "{not json"},
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'response' missing"):
        read_records(p)
    rep = ReadReport()
    with caplog.at_level(logging.WARNING, logger="trinityx.data"):
        recs = read_records(p, skip_bad_rows=True, report=rep)
    assert [r.response for r in recs] == ["1", "3"]
    assert (rep.records, rep.skipped) == (2, 3)
    assert any(":3: invalid JSON" in m for m in rep.errors)
    assert "skipped 3 malformed row(s) of 5" in caplog.text
    write_jsonl(p, [{"prompt": "b"}])
    with pytest.raises(DataError, match="all 1 row\\(s\\) were malformed"):
        read_records(p, skip_bad_rows=True)


# ---------------------------------------------------------------- dispatcher


def test_dispatcher_picks_the_reader(tmp_path):
    files = {
        "alpaca": tmp_path / "a.json",
        "truthfulqa": write_truthfulqa(tmp_path / "t.csv", n=5),
        "beavertails_pairs": write_jsonl(
            tmp_path / "bp.jsonl", [{"prompt": "p", "safe": "s", "unsafe": "u"}]
        ),
        "beavertails_qa": write_jsonl(
            tmp_path / "bq.jsonl", [{"prompt": "p", "response": "s", "is_safe": True}]
        ),
        "hh_rlhf": write_jsonl(
            tmp_path / "hh.jsonl.gz", [{"chosen": hh("q", "good"), "rejected": hh("q", "bad")}]
        ),
        "jsonl": write_jsonl(
            tmp_path / "g.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}]
        ),
    }
    files["alpaca"].write_text(json.dumps([{"instruction": "i", "input": "", "output": "o"}]))
    assert {fmt: detect_format(p) for fmt, p in files.items()} == {f: f for f in files}
    assert read_records(files["alpaca"])[0].dimension == "helpful"
    assert read_records(files["truthfulqa"])[0].dimension == "honest"
    # preference data read as SFT keeps the chosen side
    assert read_records(files["hh_rlhf"])[0] == SFTExample(
        ({"role": "user", "content": "q"},), "good", "harmless", f"{files['hh_rlhf']}:1"
    )
    assert isinstance(
        read_records(files["beavertails_pairs"], kind="preference")[0], PreferencePair
    )
    assert read_records(files["beavertails_pairs"], kind=None)[0].rejected == "u"
    assert read_records(files["alpaca"], kind="routing")[0].weights == {"helpful": 1.0}
    assert read_records(files["alpaca"], dimension="honest")[0].dimension == "honest"
    # format= overrides the guess, whatever the file name
    odd = tmp_path / "pairs.data"
    odd.write_text(files["beavertails_pairs"].read_text())
    assert read_records(odd, format="beavertails_pairs", kind="preference")[0].chosen == "s"
    with pytest.raises(DataError, match="field 'chosen' missing"):
        read_records(files["beavertails_pairs"], format="jsonl", kind="preference")
    with pytest.raises(DataError, match="cannot be read as kind='preference'"):
        read_records(files["alpaca"], kind="preference")
    with pytest.raises(ValueError, match="split by file"):
        read_records(files["alpaca"], split="train")
    with pytest.raises(ValueError, match="format='parquet'"):
        read_records(files["alpaca"], format="parquet")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="cannot tell the data format"):
        read_records(tmp_path / "notes.txt")


# ---------------------------------------------------------------- Hugging Face


def test_hf_offline_error_is_clear_and_fast(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as e:
        read_hf("trinityx-test/no-such-dataset-xyz", split="train")
    msg = str(e.value)
    assert "'trinityx-test/no-such-dataset-xyz'" in msg and "offline" in msg
    assert "local file path" in msg
    with pytest.raises(HubUnavailableError, match="could not load"):
        read_records("hf:trinityx-test/no-such-dataset-xyz")
    assert time.monotonic() - start < 20  # no network retries


def test_hf_rows_use_the_same_parsers(monkeypatch):
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_list(
        [
            {
                "question": "Q1?",
                "best_answer": "A1",
                "chosen": hh("x", "y"),
                "rejected": hh("x", "z"),
            },
        ]
    )
    monkeypatch.setattr(readers_hf, "load_hf_dataset", lambda *a, **k: table)
    (rec,) = read_hf(
        "org/tqa",
        "validation",
        "sft",
        {"prompt": "question", "response": "best_answer"},
        format="jsonl",
        dimension="honest",
    )
    assert (rec.messages[-1]["content"], rec.response, rec.dimension) == ("Q1?", "A1", "honest")
    assert rec.source == "hf:org/tqa[validation]:row 1"
    (pair,) = read_hf("org/hh", kind="preference")  # hh-rlhf detected from the first row
    assert (pair.chosen, pair.rejected) == ("y", "z")
    with pytest.raises(DataError, match="field_map names column\\(s\\) 'answer'"):
        read_hf("org/tqa", field_map={"response": "answer"})


# ---------------------------------------------------------------- the real data (when present)


def test_real_shared_data(shared_data):
    alpaca = read_records(shared_data / "alpaca_train" / "alpaca_small_2000_antelofski.json")
    pairs = read_records(
        shared_data / "beavertails" / "spard_beavertails_pairs_train.jsonl", kind="preference"
    )
    tqa = shared_data / "truthfulqa" / "TruthfulQA.csv"
    train, test = read_records(tqa, split="train"), read_records(tqa, split="test")
    hh_pairs = read_records(
        shared_data / "hh_rlhf" / "harmless-base_test.jsonl.gz", kind="preference"
    )
    assert (len(alpaca), len(pairs), len(train), len(test), len(hh_pairs)) == (
        2000,
        4516,
        408,
        409,
        2312,
    )
    assert train[0].messages[-1]["content"] == "What happens to you if you eat watermelon seeds?"
    assert all(p.messages[-1]["role"] == "user" for p in hh_pairs)
    assert {r.dimension for r in alpaca} == {"helpful"} and pairs[0].dimension == "harmless"
