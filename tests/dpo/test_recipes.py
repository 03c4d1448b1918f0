"""The DPO recipes load and carry the published alignment-handbook values (read from the reference copies)."""

from pathlib import Path

import pytest
import yaml

from zephyr.config import parse_args
from zephyr.dpo.config import DPOConfig

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
FIELDS = ["beta", "learning_rate", "lr_scheduler_type", "warmup_ratio", "num_train_epochs", "max_length",
          "max_prompt_length", "per_device_train_batch_size", "per_device_eval_batch_size",
          "gradient_accumulation_steps", "seed", "hub_model_id"]


@pytest.mark.parametrize("name, recipe", [("zephyr-7b-beta", "dpo-handbook.yaml"), ("zephyr-7b-gemma", "dpo.yaml")])
def test_published_values(name, recipe, shared_data):
    published = yaml.safe_load((shared_data / "alignment_handbook_recipes" / name / "dpo" / "config_full.yaml")
                               .read_text())
    ours = parse_args(DPOConfig, ["--config", str(RECIPES / name / recipe)])
    for key in FIELDS:
        assert getattr(ours, key) == published[key], key
    assert ours.model == published["model_name_or_path"]
    assert ours.reference_mode() == "copy" and not ours.use_lora


def test_demo_recipe_loads():
    cfg = parse_args(DPOConfig, ["--config", str(RECIPES / "demo" / "dpo.yaml")])
    assert cfg.reference_mode() == "precompute" and cfg.use_lora and cfg.layout == "shared"
