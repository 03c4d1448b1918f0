"""The dSFT stage end to end on a tiny model: assistant-only targets, loss vs transformers' own, CLI, card, resume."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from zephyr.chat_template import render_ids
from zephyr.sft import SFTConfig, run_sft, sft_loss
from zephyr.sft.cli import main
from zephyr.train import TokenScorer, Tokenized, collate_rows, latest_checkpoint, pack, read_metrics
from tests.fixtures.chat_data import write_chat_splits

CONVERSATIONS = [
    [{"role": "user", "content": "What is 17 times 23?"}, {"role": "assistant", "content": "It is 391."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "How do I bake bread?"},
     {"role": "assistant", "content": "Mix flour, water, salt and yeast."}, {"role": "user", "content": "Then?"},
     {"role": "assistant", "content": "Knead, let it rise, then bake at 230 degrees."}],
    [{"role": "user", "content": "Translate good morning into French."}, {"role": "assistant", "content": "bonjour"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."},
     {"role": "assistant", "content": "Leaves fall on the quiet river, the brown fox jumps."}],
]


@pytest.fixture
def data_dir(tmp_path):
    return write_chat_splits(tmp_path / "data", CONVERSATIONS)


def test_targets_are_exactly_the_assistant_turns(tokenizer):
    """Multi-turn: every assistant reply (with its end of turn) is a target, nothing else is."""
    examples = [Tokenized(*render_ids(c, tokenizer, "zephyr")) for c in CONVERSATIONS]
    batch = collate_rows(pack(examples, 256), examples, pad_id=0)
    per_conversation = {}
    for seq, token in zip(batch["target_seq"].tolist(), batch["target_ids"].tolist()):
        per_conversation.setdefault(seq, []).append(token)
    order = [e for row in pack(examples, 256) for e in row]
    for seq, example_index in enumerate(order):
        text = tokenizer.decode(per_conversation[seq])
        replies = [m["content"] + "</s>" for m in CONVERSATIONS[example_index] if m["role"] == "assistant"]
        assert text == "".join(replies)


def test_sft_loss_equals_transformers_loss_one_by_one(tokenizer, tiny_model_dir):
    """Reference: the model's own loss (labels = -100 outside the replies), one conversation at a time."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.float32)
    examples = [Tokenized(*render_ids(c, tokenizer, "zephyr")) for c in CONVERSATIONS]
    batch = collate_rows(pack(examples, 128), examples, pad_id=0)
    with torch.no_grad():
        ours, n_targets, _ = sft_loss(TokenScorer(model, chunk_size=5), batch)
        total, count = 0.0, 0
        for ex in examples:
            labels = torch.tensor([t if m else -100 for t, m in zip(ex.ids, ex.mask)])
            out = model(input_ids=torch.tensor([ex.ids]), labels=labels[None])
            n = int((labels[1:] != -100).sum())
            total, count = total + out.loss.item() * n, count + n
    assert n_targets == count
    assert ours.item() == pytest.approx(total, rel=1e-5)


def _cfg(model_dir, data_dir, out, **overrides):
    values = dict(model=str(model_dir), chat_template="zephyr", dataset_mixer={str(data_dir): 1.0},
                  dataset_splits=["train", "test"], output_dir=str(out), max_seq_length=64,
                  per_device_train_batch_size=2, per_device_eval_batch_size=2, learning_rate=1e-3, logging_steps=1,
                  save_steps=2, save_total_limit=1, num_train_epochs=2, progress_bar=False, report_to=["jsonl"])
    values.update(overrides)
    return SFTConfig(**values)


@pytest.mark.slow
def test_cli_trains_and_writes_model_checkpoint_and_card(tmp_path, data_dir, tiny_model_dir, capsys):
    out = tmp_path / "run"
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(yaml.safe_dump({k: v for k, v in vars(_cfg(tiny_model_dir("mistral"), data_dir, out)).items()}))
    assert main(["--config", str(recipe), "--num_train_epochs", "1", "--seed", "3"]) == 0
    assert "zephyr sft: done" in capsys.readouterr().out
    # the model, its tokenizer with the chat template, the recipe actually used
    assert (out / "model.safetensors").exists()
    assert "<|assistant|>" in AutoTokenizer.from_pretrained(out).chat_template
    assert yaml.safe_load((out / "recipe.yaml").read_text())["seed"] == 3
    records = read_metrics(out / "metrics.jsonl")
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    assert train and len(evals) == 1 and train[-1]["loss"] < train[0]["loss"]
    assert all(r["tokens_per_s"] > 0 and r["learning_rate"] >= 0 for r in train)
    # the card: hyperparameters and results table filled from this run
    card = (out / "README.md").read_text()
    assert "- learning_rate: 0.001\n" in card and "- train_batch_size: 2\n" in card
    assert "- num_devices: 1\n" in card and "- total_train_batch_size: 2\n" in card and "- num_epochs: 1\n" in card
    assert "| Training Loss | Epoch | Step | Validation Loss |" in card
    row = re.search(r"\n\| ([\d.]+) \| 1\.0 \| (\d+) \| ([\d.]+) \|", card)
    assert row and int(row.group(2)) == evals[0]["step"]
    assert float(row.group(3)) == pytest.approx(evals[0]["eval_loss"], abs=1e-4)
    assert float(row.group(1)) == pytest.approx(train[-1]["loss"], abs=1e-4)
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None and (checkpoint / "recipe.yaml").exists()


def test_frozen_embeddings_stay_as_loaded_while_the_rest_trains(tmp_path, data_dir, tiny_model_dir):
    folder = tiny_model_dir("gemma3")
    run_sft(_cfg(folder, data_dir, tmp_path / "run", freeze_embeddings=True, num_train_epochs=1))
    before = load_file(folder / "model.safetensors")
    after = load_file(tmp_path / "run" / "model.safetensors")
    frozen = {"model.embed_tokens.weight", "lm_head.weight"}
    for key in frozen:
        assert torch.equal(after[key], before[key].to(after[key].dtype)), key
    moved = [k for k in before if k not in frozen and not torch.equal(after[k], before[k].to(after[k].dtype))]
    assert len(moved) > len(before) // 2


class Kill(Exception):
    pass


@pytest.mark.slow
def test_stage_kill_and_resume_matches_uninterrupted(tmp_path, data_dir, tiny_model_dir):
    folder = tiny_model_dir("gemma3")
    run_sft(_cfg(folder, data_dir, tmp_path / "straight", use_lora=True, lora_r=4))

    def kill(trainer, event, step):
        if step == 3:
            raise Kill

    with pytest.raises(Kill):
        run_sft(_cfg(folder, data_dir, tmp_path / "resumed", use_lora=True, lora_r=4), callbacks=[kill])
    run_sft(_cfg(folder, data_dir, tmp_path / "resumed", use_lora=True, lora_r=4, resume=True))
    a = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    assert "library_name: peft" in (tmp_path / "resumed" / "README.md").read_text()


def test_bad_field_is_a_config_error():
    from zephyr.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        main(["--learning_rat", "1e-4"])
