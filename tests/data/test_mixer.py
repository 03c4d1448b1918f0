"""The mixer: per-source fractions, test splits kept out of training, hold-out, seeds, caps, accounting."""

from __future__ import annotations

import dataclasses
import random

import datasets
import pytest

from zephyr.data import DataConfig, load_chat_splits, load_preference_splits
from zephyr.errors import ConfigError, DataError
from zephyr.models import ModelConfig

ACCOUNTED = ("invalid_skipped", "dropped_by_rules", "duplicate_of_test", "decontaminated", "not_sampled", "train",
             "test")


def first_user(conversation):
    return conversation[0]["content"]


def assert_accounted(report):
    for source, counts in report.items():
        assert counts["read"] == sum(counts.get(k, 0) for k in ACCOUNTED), (source, dict(counts))


@pytest.fixture
def folder(make, tmp_path):
    """A hub-like local folder: train (100 dialogues) and test (20 different ones) splits."""
    make.write(tmp_path / "uc" / "train.jsonl", [make.chat(i) for i in range(100)])
    make.write(tmp_path / "uc" / "test.jsonl", [make.chat(1000 + i) for i in range(20)])
    return tmp_path / "uc"


def test_fractions_and_official_test_split(folder, make, tmp_path):
    other = make.write(tmp_path / "other.parquet", [make.chat(5000 + i) for i in range(40)])
    cfg = DataConfig(dataset_mixer={str(folder): 0.5, str(other): 0.25}, test_split_size=0.1)
    splits = load_chat_splits(cfg)
    uc, ot = splits.report[str(folder)], splits.report[str(other)]
    assert (uc["read"], uc["train"], uc["not_sampled"], uc["test"], uc.get("held_out", 0)) == (120, 50, 50, 20, 0)
    assert (ot["read"], ot["held_out"], ot["train"], ot["not_sampled"], ot["test"]) == (40, 4, 9, 27, 4)
    assert len(splits.train) == 59 and len(splits.test) == 24
    test_prompts = {first_user(c) for c in splits.test}
    assert not test_prompts & {first_user(c) for c in splits.train}
    official = {f"Question {1000 + i}.0 about topic {1000 + i}?" for i in range(20)}
    assert official <= test_prompts  # the whole official test split, none of it in train
    assert sum(int(first_user(c).split()[1].split(".")[0]) >= 5000 for c in splits.train) == 9
    assert_accounted(splits.report)
    table = str(splits.report)
    assert "train" in table and "total" in table and "59" in table


def test_seed_controls_sampling_and_order(folder):
    def run(seed):
        return load_chat_splits(DataConfig(dataset_mixer={str(folder): 0.3}, seed=seed)).train

    first = run(1)
    random.seed(99)  # the global random state moves on between the runs: only the config's seed may matter
    assert run(1) == first
    assert first != run(2)
    assert {first_user(c) for c in first} != {first_user(c) for c in run(2)}  # a different random subset


def test_hold_out_when_no_test_split(make, tmp_path):
    path = make.write(tmp_path / "only_train.jsonl", [make.chat(i) for i in range(50)])
    splits = load_chat_splits(DataConfig(dataset_mixer={str(path): 1.0}, test_split_size=0.2))
    assert (len(splits.train), len(splits.test)) == (40, 10)
    assert splits.report[str(path)]["held_out"] == 10
    counted = load_chat_splits(DataConfig(dataset_mixer={str(path): 1.0}, test_split_size=7))
    assert len(counted.test) == 7  # >= 1: a row count
    assert not {first_user(c) for c in splits.test} & {first_user(c) for c in splits.train}


def test_source_at_split_dict_form_and_duplicates(make, folder, tmp_path):
    # the same file named twice, once as test: its rows must not be trained on
    path = make.write(tmp_path / "same.jsonl", [make.chat(i) for i in range(10)])
    cfg = DataConfig(dataset_mixer={str(path): 1.0, f"{path}@test_sft": 1.0}, test_split_size=0)
    splits = load_chat_splits(cfg)
    assert len(splits.test) == 10 and splits.train == []  # rows only in train would remain
    # dict form: explicit splits (a folder's file names) and a fraction
    cfg = DataConfig(dataset_mixer={str(folder): {"fraction": 0.1, "splits": ["train"]}}, test_split_size=0)
    splits = load_chat_splits(cfg)
    assert (len(splits.train), len(splits.test)) == (10, 0)
    with pytest.raises(ConfigError, match="fraction"):
        load_chat_splits(DataConfig(dataset_mixer={str(folder): 1.5}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_chat_splits(DataConfig(dataset_mixer={str(folder): {"weight": 1.0}}))
    with pytest.raises(ConfigError, match="empty"):
        load_chat_splits(DataConfig())
    with pytest.raises(DataError, match="no file for split 'validation'"):
        load_chat_splits(DataConfig(dataset_mixer={f"{folder}@validation": 1.0}))


def test_caps(folder):
    splits = load_chat_splits(DataConfig(dataset_mixer={str(folder): 1.0}, max_train_samples=7,
                                         max_eval_samples=3))
    assert (len(splits.train), len(splits.test)) == (7, 3)
    assert "kept 7 of 100 train rows" in str(splits.report)


def test_skip_invalid_counts_in_accounting(make, tmp_path):
    rows = [make.chat(i) for i in range(10)]
    rows[4] = {"messages": [{"role": "user", "content": "only"}]}
    path = make.write(tmp_path / "c.jsonl", rows)
    splits = load_chat_splits(DataConfig(dataset_mixer={str(path): 1.0}, skip_invalid=True, test_split_size=0))
    assert splits.report[str(path)]["invalid_skipped"] == 1 and len(splits.train) == 9
    assert_accounted(splits.report)


def test_hub_path_uses_load_dataset(make, monkeypatch):
    """The hub is unreachable here: stand in for `datasets.load_dataset` with the same split semantics."""
    tables = {"train_prefs": [{"prompt": f"Q{i}", "chosen": f"A{i}", "rejected": f"B{i}"} for i in range(30)],
              "test_prefs": [{"prompt": f"T{i}", "chosen": f"A{i}", "rejected": f"B{i}"} for i in range(5)]}
    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None, **kwargs):
        calls.append((path, name, split, revision))
        if split not in tables:
            raise ValueError(f'Unknown split "{split}". Should be one of {list(tables)}.')
        return datasets.Dataset.from_list(tables[split])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cfg = DataConfig(dataset_mixer={"HuggingFaceH4/ultrafeedback_binarized": {"fraction": 1.0, "config": "default",
                                                                               "revision": "abc"}},
                     dataset_splits=["train_prefs", "test_prefs", "train_gen"])
    splits = load_preference_splits(cfg)
    assert (len(splits.train), len(splits.test)) == (30, 5)
    assert {p["prompt"][0]["content"] for p in splits.test} == {f"T{i}" for i in range(5)}
    assert calls[0] == ("HuggingFaceH4/ultrafeedback_binarized", "default", "train_prefs", "abc")
    with pytest.raises(DataError, match="no split 'nope'"):
        load_preference_splits(DataConfig(dataset_mixer={"HuggingFaceH4/ultrafeedback_binarized@nope": 1.0}))
    with pytest.raises(DataError, match="none of the splits"):
        load_preference_splits(DataConfig(dataset_mixer={"some/dataset": 1.0}, dataset_splits=["x"]))


def test_combines_with_model_config():
    clash = {f.name for f in dataclasses.fields(DataConfig)} & {f.name for f in dataclasses.fields(ModelConfig)}
    assert not clash

    @dataclasses.dataclass
    class StageConfig(ModelConfig, DataConfig):
        learning_rate: float = 1e-5

    stage = StageConfig(dataset_mixer={"x.jsonl": 1.0}, lora_r=8)
    assert stage.dataset_splits == ["train", "test"] and stage.model == "embedded" and stage.seed == 42
    assert all(f.metadata.get("help") for f in dataclasses.fields(DataConfig))


def test_hub_snapshot_folder_with_sharded_parquet(make, tmp_path):
    """A downloaded hub dataset: data/train_sft-0000X-of-00002.parquet, data/test_sft-00000-of-00001.parquet."""
    snapshot = tmp_path / "ultrachat_200k"
    make.write(snapshot / "data" / "train_sft-00000-of-00002.parquet", [make.chat(i) for i in range(6)])
    make.write(snapshot / "data" / "train_sft-00001-of-00002.parquet", [make.chat(i) for i in range(6, 10)])
    make.write(snapshot / "data" / "test_sft-00000-of-00001.parquet", [make.chat(100 + i) for i in range(3)])
    make.write(snapshot / "data" / "train_gen-00000-of-00001.parquet", [make.chat(200 + i) for i in range(5)])
    splits = load_chat_splits(DataConfig(dataset_mixer={str(snapshot): 1.0}, dataset_splits=["train_sft", "test_sft"]))
    assert (len(splits.train), len(splits.test)) == (10, 3)
    assert splits.report[str(snapshot)]["read"] == 13
