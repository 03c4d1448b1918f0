"""Each card-faithful recipe against its model card: every value of the card's "Training hyperparameters" list,
read from ../shared/model_cards at test time, equals the recipe plus its launch command in recipes/README.md."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from zephyr.config import parse_args
from zephyr.dpo.config import DPOConfig
from zephyr.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
CARDS = ROOT.parent / "shared" / "model_cards"

# card file -> (stage, recipe it is reproduced by)
CARD_RECIPES = {
    "zephyr-7b-alpha.md": ("dpo", "recipes/zephyr-7b-alpha/dpo.yaml"),
    "mistral-7b-sft-beta.md": ("sft", "recipes/mistral-7b-sft-beta/sft.yaml"),
    "zephyr-7B-beta-AWQ.md": ("dpo", "recipes/zephyr-7b-beta/dpo.yaml"),  # zephyr-7b-beta's card, as published
    "zephyr-7b-gemma-v0.1.md": ("dpo", "recipes/zephyr-7b-gemma/dpo.yaml"),
}
CONFIGS = {"sft": SFTConfig, "dpo": DPOConfig}
# the HF Trainer's card name of each scheduler our lr_scheduler_type names
SCHEDULERS = {"linear": "linear", "cosine": "cosine"}


def card_hyperparameters(card: Path) -> dict[str, str]:
    """The `- key: value` list under the card's "### Training hyperparameters" heading."""
    section = card.read_text(encoding="utf-8").split("### Training hyperparameters", 1)[1]
    values = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        match = re.match(r"- (\w+): (.+)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def launch_commands(readme: Path) -> list[list[str]]:
    """Every `accelerate launch ...` command of the README's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip().startswith("accelerate launch"):
                commands.append(shlex.split(command))
    return commands


def launch_for(recipe: str) -> tuple[int, list[str], str]:
    """-> (processes, zephyr arguments after the stage name, distributed type) of the README's command for it."""
    matches = [c for c in launch_commands(RECIPES / "README.md") if recipe in c]
    assert len(matches) == 1, f"recipes/README.md must have exactly one launch command for {recipe}"
    words = matches[0]
    module = words.index("-m")
    launcher, zephyr_args = words[2:module], words[module + 3:]
    options = {}
    for i, word in enumerate(launcher):
        if word.startswith("--"):
            key, _, value = word[2:].partition("=")
            options[key] = value or launcher[i + 1]
    accelerate_config = yaml.safe_load((ROOT / options["config_file"]).read_text())
    processes = int(options.get("num_processes", accelerate_config["num_processes"]))
    return processes, zephyr_args, accelerate_config["distributed_type"]


def recipe_and_launch(card_file: str):
    stage, recipe = CARD_RECIPES[card_file]
    processes, zephyr_args, distributed = launch_for(recipe)
    assert zephyr_args[:2] == ["--config", recipe]
    return parse_args(CONFIGS[stage], zephyr_args), processes, distributed


@pytest.fixture(scope="module", params=sorted(CARD_RECIPES))
def card(request):
    path = CARDS / request.param
    if not path.exists():
        pytest.skip(f"model card not found at {path}")
    return request.param, card_hyperparameters(path)


def test_every_card_value_matches_the_recipe_and_its_launch(card):
    card_file, card_values = card
    cfg, processes, distributed = recipe_and_launch(card_file)
    accumulation = int(card_values.get("gradient_accumulation_steps", "1"))  # the Trainer lists it only when > 1
    checked = {
        "learning_rate": float(card_values["learning_rate"]) == cfg.learning_rate,
        "train_batch_size": int(card_values["train_batch_size"]) == cfg.per_device_train_batch_size,
        "eval_batch_size": int(card_values["eval_batch_size"]) == cfg.per_device_eval_batch_size,
        "seed": int(card_values["seed"]) == cfg.seed,
        "distributed_type": card_values["distributed_type"] == "multi-GPU" and distributed in (
            "MULTI_GPU", "DEEPSPEED", "FSDP"),
        "num_devices": int(card_values["num_devices"]) == processes,
        "gradient_accumulation_steps": accumulation == cfg.gradient_accumulation_steps,
        "total_train_batch_size": int(card_values["total_train_batch_size"]) ==
        processes * cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps,
        "total_eval_batch_size": int(card_values["total_eval_batch_size"]) ==
        processes * cfg.per_device_eval_batch_size,
        "lr_scheduler_type": card_values["lr_scheduler_type"] == SCHEDULERS[cfg.lr_scheduler_type],
        "lr_scheduler_warmup_ratio": float(card_values["lr_scheduler_warmup_ratio"]) == cfg.warmup_ratio,
        "num_epochs": float(card_values["num_epochs"]) == cfg.num_train_epochs and cfg.max_steps <= 0,
    }
    optimizer = re.fullmatch(r"Adam with betas=\(([\d.e-]+),([\d.e-]+)\) and epsilon=([\d.e-]+)",
                             card_values["optimizer"])
    assert optimizer, card_values["optimizer"]
    checked["optimizer"] = (tuple(float(v) for v in optimizer.groups()) ==
                            (cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon) and cfg.weight_decay == 0.0)
    unchecked = set(card_values) - set(checked)
    assert not unchecked, f"{card_file} lists values this test does not check: {unchecked}"
    wrong = {key: card_values.get(key) for key, ok in checked.items() if not ok}
    assert not wrong, f"{card_file}: the recipe differs from the card on {wrong}"


def test_the_test_reads_what_the_cards_say():
    """The parser itself, on the two cards whose totals the issue quotes."""
    if not CARDS.exists():
        pytest.skip(f"model cards not found at {CARDS}")
    beta = card_hyperparameters(CARDS / "zephyr-7B-beta-AWQ.md")
    assert (beta["total_train_batch_size"], beta["lr_scheduler_type"], beta["num_epochs"]) == ("32", "linear", "3.0")
    sft = card_hyperparameters(CARDS / "mistral-7b-sft-beta.md")
    assert (sft["total_train_batch_size"], sft["eval_batch_size"], sft["gradient_accumulation_steps"]) == \
        ("512", "16", "4")


def test_card_faithful_sft_trains_on_every_token_and_the_default_on_replies_only():
    cfg, _, _ = recipe_and_launch("mistral-7b-sft-beta.md")
    assert cfg.assistant_only_loss is False
    assert SFTConfig().assistant_only_loss is True


def test_assistant_only_loss_sets_the_mask(tokenizer):
    """One hand-built conversation, packed twice in a row: assistant-only targets are the replies; all-token
    targets are every token after the first of each conversation, never the first one from the one before."""
    from zephyr.chat_template import render_ids
    from zephyr.sft.stage import tokenize_conversations
    from zephyr.train import collate_rows

    conversation = [{"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "What is 17 times 23?"},
                    {"role": "assistant", "content": "It is 391."}]
    ids, assistant_mask = render_ids(conversation, tokenizer, "zephyr")
    (replies,) = tokenize_conversations([conversation], tokenizer, "zephyr")
    (every,) = tokenize_conversations([conversation], tokenizer, "zephyr", assistant_only=False)
    assert replies.ids == every.ids == ids
    assert replies.mask == assistant_mask and every.mask == [1] * len(ids)
    assert tokenizer.decode([t for t, m in zip(ids, assistant_mask) if m]) == "It is 391.</s>"

    n = len(ids)
    only = collate_rows([[0, 1]], [replies, replies], pad_id=0)
    allt = collate_rows([[0, 1]], [every, every], pad_id=0)
    assert only["n_targets"] == 2 * sum(assistant_mask[1:])
    assert allt["n_targets"] == 2 * (n - 1)
    # targets are predicted from inside the same conversation: position n - 1 (the first conversation's last
    # token) never predicts the second conversation's first token
    assert (n - 1) not in allt["target_index"].tolist()
    assert allt["target_ids"].tolist() == ids[1:] + ids[1:]
