"""Decontamination against the real MT-Bench / AlpacaEval / IFEval prompt files (read at test time)."""

from __future__ import annotations

import json
import random
import time

import pytest

from zephyr.data import DataConfig, EvalIndex, load_chat_splits, load_preference_splits, read_eval_prompts
from zephyr.data.decontaminate import words
from zephyr.errors import DataError


@pytest.fixture(scope="module")
def eval_files(shared_data):
    return {"mt_bench": shared_data / "mt_bench" / "question.jsonl",
            "alpaca_eval": shared_data / "alpaca_eval" / "gpt4_1106_preview.model_outputs.json",
            "ifeval": shared_data / "ifeval" / "input_data.jsonl"}


def test_formats_are_detected(eval_files):
    counts = {name: read_eval_prompts(path) for name, path in eval_files.items()}
    assert counts["mt_bench"][1] == "mt_bench" and len(counts["mt_bench"][0]) == 160  # 80 questions x 2 turns
    assert counts["alpaca_eval"][1] == "alpaca_eval" and len(counts["alpaca_eval"][0]) == 805
    assert counts["ifeval"][1] == "ifeval" and len(counts["ifeval"][0]) == 541


def test_eval_prompts_inside_training_rows_are_caught(eval_files):
    index, _ = EvalIndex.from_files(eval_files.values())
    rng = random.Random(0)
    for name, path in eval_files.items():
        prompts = [p for p in read_eval_prompts(path)[0] if len(words(p)) >= 12]
        for prompt in rng.sample(prompts, 10):
            tokens = prompt.split()
            middle = " ".join(tokens[2:12])  # ten words lifted from the middle, re-cased and punctuated
            assert index.contaminated([f"Please help. {middle.upper()}!!! Thanks."]), (name, prompt)
    assert not index.contaminated(["Explain how photosynthesis turns light, water and carbon dioxide into sugar."])


def test_short_eval_prompts_match_only_whole_turns():
    index = EvalIndex(["What is Atlantis?", "one two three four five six seven eight nine"], n=8)
    assert index.contaminated(["what is atlantis"])
    assert not index.contaminated(["What is Atlantis known for in Greek myths?"])
    assert index.contaminated(["zero ONE two, three four five six seven eight!"])
    assert not index.contaminated(["one two three four five six seven"])


def test_loader_counts_and_keeps_the_rest(eval_files, make, tmp_path):
    mt_turn = read_eval_prompts(eval_files["mt_bench"])[0][4]
    alpaca = read_eval_prompts(eval_files["alpaca_eval"])[0][10]
    ifeval = read_eval_prompts(eval_files["ifeval"])[0][20]
    rows = [make.chat(i) for i in range(20)]
    rows[3]["messages"][0]["content"] = mt_turn
    rows[7]["messages"] = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                           {"role": "user", "content": "Now: " + alpaca}, {"role": "assistant", "content": "Ok"}]
    rows[11]["messages"][0]["content"] = ifeval.lower()
    path = make.write(tmp_path / "chat.jsonl", rows)
    cfg = DataConfig(dataset_mixer={str(path): 1.0}, test_split_size=0,
                     decontaminate=[str(p) for p in eval_files.values()])
    splits = load_chat_splits(cfg)
    assert splits.report[str(path)]["decontaminated"] == 3
    assert len(splits.train) == 17
    assert "1506 eval prompts" in str(splits.report)


def test_real_ultrafeedback_pairs_decontaminated(eval_files, shared_data):
    source = str(shared_data / "ultrafeedback_binarized_sample" / "train_1000.jsonl")
    cfg = DataConfig(dataset_mixer={source: 1.0}, test_split_size=0,
                     decontaminate=[str(p) for p in eval_files.values()])
    splits = load_preference_splits(cfg)
    counts = splits.report[source]
    assert counts["decontaminated"] == 4  # 1 reworded AlpacaEval question + 3 stock phrases (see module doc)
    index, _ = EvalIndex.from_files(eval_files.values())
    assert not any(index.contaminated([p["prompt"][0]["content"]]) for p in splits.train)


def test_fast_on_many_rows(eval_files):
    index, _ = EvalIndex.from_files(eval_files.values())
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choices(vocab, k=120)) for _ in range(5000)]
    # a few rows carry an eval prompt inside their filler, so the timed loop also takes the positive path
    prompts = [p for p in read_eval_prompts(eval_files["alpaca_eval"])[0] if len(words(p)) >= 12]
    planted = rng.sample(range(len(texts)), 25)
    for row, prompt in zip(planted, rng.sample(prompts, len(planted))):
        texts[row] = f"{texts[row][:200]} {prompt} {texts[row][200:]}"
    start = time.perf_counter()
    hits = [i for i, t in enumerate(texts) if index.contaminated([t])]
    elapsed = time.perf_counter() - start
    assert hits == sorted(planted)  # every planted prompt found, no random filler row flagged
    assert elapsed < 3.0, f"5k x 120-word prompts took {elapsed:.2f}s"  # n-gram lookups, not a scan per prompt


def test_bad_eval_file_names_line_and_field(tmp_path):
    bad = tmp_path / "eval.jsonl"
    bad.write_text(json.dumps({"turns": ["ok"]}) + "\n" + json.dumps({"question": "?"}) + "\n")
    with pytest.raises(DataError) as err:
        read_eval_prompts(bad)
    assert err.value.line == 2 and "turns" in err.value.field
    wrong = tmp_path / "eval2.jsonl"
    wrong.write_text(json.dumps({"turns": "not a list"}) + "\n")
    with pytest.raises(DataError, match=r"eval2\.jsonl:1: field 'turns'"):
        read_eval_prompts(wrong)
