"""SFT recipes: the published alignment-handbook values carry over field for field; all recipes parse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zephyr.config import parse_args
from zephyr.sft import SFTConfig
from zephyr.data.sources import resolve_sources

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

# handbook key -> our field (same meaning, our name)
SAME = {"learning_rate": "learning_rate", "lr_scheduler_type": "lr_scheduler_type", "warmup_ratio": "warmup_ratio",
        "num_train_epochs": "num_train_epochs", "max_steps": "max_steps", "max_seq_length": "max_seq_length",
        "per_device_train_batch_size": "per_device_train_batch_size", "gradient_checkpointing": "gradient_checkpointing",
        "per_device_eval_batch_size": "per_device_eval_batch_size", "seed": "seed", "logging_steps": "logging_steps",
        "gradient_accumulation_steps": "gradient_accumulation_steps", "output_dir": "output_dir",
        "hub_model_id": "hub_model_id", "model_name_or_path": "model", "model_revision": "revision",
        "torch_dtype": "dtype", "attn_implementation": "attn_implementation"}


@pytest.mark.parametrize("name", ["zephyr-7b-beta", "zephyr-7b-gemma"])
def test_published_values(name, shared_data):
    handbook = yaml.safe_load((shared_data / "alignment_handbook_recipes" / name / "sft" / "config_full.yaml").read_text())
    ours = parse_args(SFTConfig, ["--config", str(RECIPES / name / "sft.yaml")])
    for theirs, field in SAME.items():
        assert getattr(ours, field) == handbook[theirs], field
    # handbook bf16: true = bf16 autocast over fp32 master weights: zephyr's dtype (the compute dtype) with
    # low_precision_weights off
    assert handbook["bf16"] and ours.dtype == "bfloat16" and not ours.low_precision_weights
    datasets = {d["id"] for d in handbook["dataset_mixture"]["datasets"]}
    assert set(ours.dataset_mixer) == datasets
    assert ours.dataset_splits == [d["split"] for d in handbook["dataset_mixture"]["datasets"]]
    assert ours.chat_template == ("chatml" if "im_start" in handbook["chat_template"] else "zephyr")
    if handbook["save_strategy"] == "steps":
        assert (ours.save_steps, ours.save_total_limit) == (handbook["save_steps"], handbook["save_total_limit"])
    else:
        assert ours.save_steps == 0  # "no": only the final model
    assert handbook["eval_strategy"] == "epoch" and ours.eval_steps == 0  # 0 = at every epoch's end


def test_demo_recipe_parses_and_finds_its_data():
    cfg = parse_args(SFTConfig, ["--config", str(RECIPES / "demo" / "sft.yaml")])
    assert cfg.model == "embedded" and not cfg.use_lora  # full fine-tuning: IFEval gains more than with LoRA
    assert cfg.freeze_embeddings  # but not of the 262k-token embedding/head: twice the speed, the same IFEval
    (folder,) = resolve_sources(cfg.dataset_mixer)
    assert all((Path(folder) / f"{split}.jsonl").exists() for split in cfg.dataset_splits)


@pytest.mark.parametrize("name", ["ddp", "zero3", "fsdp"])
def test_accelerate_configs_are_valid(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(RECIPES / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.value == {"ddp": "MULTI_GPU", "zero3": "DEEPSPEED", "fsdp": "MULTI_GPU"}[name]
    assert config.mixed_precision == "bf16"
