"""Every accepted schema from every file format, the real UltraFeedback pairs, and every bad-input path."""

from __future__ import annotations

import json

import pytest

from zephyr.data import DataConfig, load_chat_splits, load_preference_splits
from zephyr.errors import DataError

FORMATS = ["jsonl", "json", "parquet", "csv"]
USER = {"role": "user", "content": "Name a colour."}


def pair_rows(make):
    """The same three pairs in the three preference schemas (+ raw UltraFeedback giving the same first pair)."""
    text = [{"prompt": f"Name colour {i}.", "chosen": f"Red {i}.", "rejected": f"No {i}.",
             "metadata": {"score_chosen": 9.0, "score_rejected": 2.0 + i}} for i in range(3)]
    h4 = [{"prompt": r["prompt"], "prompt_id": "x",
           "chosen": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}],
           "rejected": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["rejected"]}],
           "messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}],
           "score_chosen": 9.0, "score_rejected": 2.0 + i} for i, r in enumerate(text)]
    raw = [{"instruction": r["prompt"], "completions": [
        {**make.completion(r["chosen"], ["5"] * 4), "overall_score": 9.0},
        {**make.completion(r["rejected"], ["2"] * 4), "overall_score": 2.0 + i}]} for i, r in enumerate(text)]
    return {"text": text, "h4": h4, "raw": raw}


def load(loader, path, **options):
    options.setdefault("test_split_size", 0)
    return loader(DataConfig(dataset_mixer={str(path): 1.0}, **options))


@pytest.mark.parametrize("fmt", FORMATS)
def test_chat_rows_in_every_format(make, tmp_path, fmt):
    rows = [make.chat(i, turns=1 + i % 2) for i in range(6)]
    splits = load(load_chat_splits, make.write(tmp_path / f"chat.{fmt}", rows))
    assert sorted(map(json.dumps, splits.train)) == sorted(json.dumps(r["messages"]) for r in rows)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("schema", ["text", "h4", "raw"])
def test_preference_rows_in_every_format(make, tmp_path, fmt, schema):
    rows = pair_rows(make)[schema]
    splits = load(load_preference_splits, make.write(tmp_path / f"pairs.{fmt}", rows))
    got = sorted(splits.train, key=lambda p: p["chosen"])
    assert [p["prompt"] for p in got] == [[{"role": "user", "content": f"Name colour {i}."}] for i in range(3)]
    assert [(p["chosen"], p["rejected"]) for p in got] == [(f"Red {i}.", f"No {i}.") for i in range(3)]
    # raw rows: the mixer's default rule is the H4 release's (overall_score), so the scores are the others'
    assert [(p["score_chosen"], p["score_rejected"]) for p in got] == [(9.0, 2.0 + i) for i in range(3)]


def test_multi_turn_h4_pair_and_prompt_as_messages(make, tmp_path):
    history = [USER, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}]
    rows = [{"chosen": history + [{"role": "assistant", "content": "Green."}],
             "rejected": history + [{"role": "assistant", "content": "No."}]},
            {"prompt": history, "chosen": [{"role": "assistant", "content": "Green."}], "rejected": "No."}]
    splits = load(load_preference_splits, make.write(tmp_path / "p.jsonl", rows))
    assert splits.train == [{"prompt": history, "chosen": "Green.", "rejected": "No."}] * 2
    chats = load(load_chat_splits, tmp_path / "p.jsonl")  # preference rows as SFT data: prompt + chosen
    assert chats.train == [history + [{"role": "assistant", "content": "Green."}]] * 2


def test_real_ultrafeedback_pairs(shared_data):
    folder = shared_data / "ultrafeedback_binarized_sample"
    cfg = DataConfig(dataset_mixer={str(folder / "train_1000.jsonl"): 1.0, f"{folder / 'eval_200.jsonl'}@test": 1.0},
                     test_split_size=0)
    splits = load_preference_splits(cfg)
    train_counts = splits.report[str(folder / "train_1000.jsonl")]
    # line 834 has an empty chosen reply: dropped and counted; line 479 has an empty rejected one: kept
    assert train_counts["read"] == 1000 and train_counts["pair_empty_chosen"] == 1
    assert len(splits.train) == 999 and len(splits.test) == 200
    assert all(p["prompt"][-1]["role"] == "user" and isinstance(p["chosen"], str) for p in splits.train)
    assert all(p["score_chosen"] >= p["score_rejected"] for p in splits.train + splits.test)
    ties = sum(p["score_chosen"] == p["score_rejected"] for p in splits.train + splits.test)
    assert ties == 136  # PROVENANCE.md: 136 of the 1,200 rows are ties
    first = json.loads((folder / "train_1000.jsonl").read_text().splitlines()[0])
    match = [p for p in splits.train if p["chosen"] == first["chosen"]]
    assert match and match[0]["prompt"] == [{"role": "user", "content": first["prompt"]}]


# ---- bad input --------------------------------------------------------------------------------------------

GOOD = {"messages": [USER, {"role": "assistant", "content": "Red."}]}
BAD_CHAT = {
    "wrong type": ({"messages": "Name a colour."}, "messages", "expected a list"),
    "missing field": ({"prompt": "x"}, "messages", "missing"),
    "unknown role": ({"messages": [{"role": "robot", "content": "beep"}, GOOD["messages"][1]]},
                     "messages[0].role", "unknown role"),
    "empty content": ({"messages": [USER, {"role": "assistant", "content": "  "}]},
                      "messages[1].content", "empty content"),
    "content not text": ({"messages": [USER, {"role": "assistant", "content": 5}]},
                         "messages[1].content", "expected a string"),
    "order": ({"messages": [USER, USER]}, "messages[1]", "alternate"),
    "not an object": (["a", "list"], None, "must be an object"),
}


# parquet columns have one type per column, so only the cases a parquet file can hold are written as parquet
MIXED_TYPES = ("not an object", "wrong type", "content not text", "missing field")


@pytest.mark.parametrize("fmt, case", [("jsonl", c) for c in BAD_CHAT] +
                         [("parquet", c) for c in BAD_CHAT if c not in MIXED_TYPES])
def test_bad_chat_rows_name_file_line_and_field(make, tmp_path, case, fmt):
    bad, field, problem = BAD_CHAT[case]
    path = make.write(tmp_path / f"chat.{fmt}", [GOOD, GOOD, bad, GOOD])
    with pytest.raises(DataError) as err:
        load(load_chat_splits, path)
    line = 3 if fmt == "jsonl" else 2  # JSONL: 1-based line; parquet: 0-based row index
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    assert problem in str(err.value)
    assert (f"{path}:3" if fmt == "jsonl" else f"{path} (row 2)") in str(err.value)
    skipped = load(load_chat_splits, path, skip_invalid=True)
    assert len(skipped.train) == 3 and skipped.report[str(path)]["invalid_skipped"] == 1
    assert problem in str(skipped.report)


def test_bad_json_line_and_csv_line_numbers(make, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + '{"messages": [\n' + json.dumps(GOOD) + "\n")
    with pytest.raises(DataError, match=r"chat\.jsonl:3: not valid JSON"):
        load(load_chat_splits, path)
    assert load(load_chat_splits, path, skip_invalid=True).report[str(path)]["invalid_skipped"] == 1
    # CSV: header is line 1; a quoted multi-line cell shifts the next row's line number
    rows = [{"prompt": "Q\nwith a newline", "chosen": "A", "rejected": "B"},
            {"prompt": "Q2", "chosen": "", "rejected": "B"},  # empty chosen: dropped by rule, not an error
            {"prompt": "Q3", "chosen": "A", "rejected": "B", "score_chosen": "high"}]
    csv_path = make.write(tmp_path / "pairs.csv", rows)
    with pytest.raises(DataError) as err:
        load(load_preference_splits, csv_path)
    assert (err.value.line, err.value.field) == (5, "score_chosen")
    assert "expected a number" in str(err.value)


def test_bad_pair_rows(make, tmp_path):
    cases = [({"prompt": "Q", "chosen": "A"}, "rejected"),
             ({"prompt": 3, "chosen": "A", "rejected": "B"}, "prompt"),
             ({"chosen": "A", "rejected": "B"}, "prompt"),
             ({"prompt": "Q", "chosen": [USER], "rejected": "B"}, "chosen"),
             ({"chosen": [USER, {"role": "assistant", "content": "A"}],
               "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "B"}]}, "rejected"),
             ({"prompt": "Q", "chosen": "A", "rejected": "B", "score_chosen": [1]}, "score_chosen"),
             ({"prompt": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
               "chosen": "A", "rejected": "B"}, "prompt")]
    for i, (row, field) in enumerate(cases):
        path = make.write(tmp_path / f"bad{i}.jsonl", [row])
        with pytest.raises(DataError) as err:
            load(load_preference_splits, path)
        assert (err.value.line, err.value.field) == (1, field), (row, str(err.value))


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load(load_chat_splits, tmp_path / "nope.jsonl")
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        load(load_chat_splits, f"{tmp_path / 'data.txt'}@train")


def test_finished_rows_cuts_only_a_torn_last_line(tmp_path):
    from zephyr.data.io import appending, finished_rows

    out = tmp_path / "out.jsonl"
    with appending(out) as append:
        append([{"index": 0}, {"index": 1}])
    whole = out.read_text()
    out.write_text(whole + '{"index": 2, "re')  # killed in mid-write
    assert finished_rows(out) == {0, 1} and out.read_text() == whole
    out.write_text('{"index": 0}\nnot json\n{"index": 1}\n')  # a damaged line in the middle is not a torn write
    with pytest.raises(DataError, match="out.jsonl:2: not a finished row"):
        finished_rows(out)
    assert out.read_text() == '{"index": 0}\nnot json\n{"index": 1}\n'  # nothing cut
