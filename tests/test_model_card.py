"""Model card: published-Zephyr layout, hyperparameters in order, results table with extra (DPO) columns, and
the one assembly both training stages call."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from zephyr.model_card import hyperparameters, render_model_card, results_rows, write_stage_card
from zephyr.train import TrainConfig


def test_hyperparameters_like_the_published_card():
    cfg = TrainConfig(learning_rate=2e-5, per_device_train_batch_size=16, per_device_eval_batch_size=8, seed=42,
                      gradient_accumulation_steps=1, lr_scheduler_type="cosine", warmup_ratio=0.1)
    params = hyperparameters(cfg, num_devices=8, distributed_type="multi-GPU", num_epochs=1)
    assert list(params) == ["learning_rate", "train_batch_size", "eval_batch_size", "seed", "distributed_type",
                            "num_devices", "gradient_accumulation_steps", "total_train_batch_size",
                            "total_eval_batch_size", "optimizer", "lr_scheduler_type", "lr_scheduler_warmup_ratio",
                            "num_epochs"]
    card = render_model_card(model_name="zephyr-7b-sft-full", base_model="mistralai/Mistral-7B-v0.1",
                             datasets=["HuggingFaceH4/ultrachat_200k"], hyperparameters=params, results=[])
    # the exact lines of HuggingFaceH4/mistral-7b-sft-beta's card
    for line in ["- learning_rate: 2e-05", "- train_batch_size: 16", "- eval_batch_size: 8", "- seed: 42",
                 "- distributed_type: multi-GPU", "- num_devices: 8", "- total_train_batch_size: 128",
                 "- total_eval_batch_size: 64", "- optimizer: Adam with betas=(0.9,0.999) and epsilon=1e-08",
                 "- lr_scheduler_type: cosine", "- lr_scheduler_warmup_ratio: 0.1", "- num_epochs: 1"]:
        assert line + "\n" in card
    assert "[mistralai/Mistral-7B-v0.1](https://huggingface.co/mistralai/Mistral-7B-v0.1)" in card
    assert card.startswith("---\nlicense: apache-2.0\nbase_model: mistralai/Mistral-7B-v0.1\n")


def test_results_table_rows_and_extra_columns():
    history = [{"step": 5, "epoch": 0.5, "loss": 1.234567}, {"step": 10, "epoch": 1.0, "loss": 0.9066},
               {"step": 10, "epoch": 1.0, "eval_loss": 0.90751, "eval_rewards/chosen": -0.01234567},
               {"step": 20, "epoch": 2.0, "eval_loss": 0.85, "eval_rewards/chosen": 0.5}]
    rows = results_rows(history)
    assert [r["loss"] for r in rows] == [0.9066, 0.9066]  # the latest train loss at each eval
    card = render_model_card(model_name="m", base_model="b", datasets=[], hyperparameters={}, results=rows,
                             eval_metrics={"Loss": 0.85}, extra_columns={"Rewards/chosen": "eval_rewards/chosen"})
    assert "| Training Loss | Epoch | Step | Validation Loss | Rewards/chosen |" in card
    assert "| 0.9066 | 1.0 | 10 | 0.9075 | -0.0123 |" in card
    assert "| 0.9066 | 2.0 | 20 | 0.85 | 0.5 |" in card
    assert "- Loss: 0.85\n" in card
    assert "No log" in render_model_card(model_name="m", base_model="b", datasets=[], hyperparameters={},
                                         results=results_rows([{"step": 1, "epoch": 1.0, "eval_loss": 1.0}]))


def test_a_stage_card_from_its_trainer_and_result(tmp_path):
    """What a stage gives (description, its hyperparameters and columns) lands in the card with the shared parts."""
    cfg = SimpleNamespace(**{**vars(TrainConfig(max_steps=-1)), "model": "embedded", "hub_model_id": "",
                             "output_dir": str(tmp_path / "run-a"), "dataset_mixer": {"zephyr/demo_data": 1.0},
                             "use_lora": True})
    Path(cfg.output_dir).mkdir()
    trainer = SimpleNamespace(accelerator=SimpleNamespace(distributed_type="DistributedType.MULTI_GPU",
                                                          num_processes=2), steps_per_epoch=4)
    history = [{"step": 6, "epoch": 1.5, "loss": 0.75},
               {"step": 6, "epoch": 1.5, "eval_loss": 0.5, "eval_rewards/chosen": 0.25}]
    result = SimpleNamespace(global_step=6, log_history=history,
                             eval_metrics={"eval_loss": 0.5, "eval_rewards/chosen": 0.25})
    card = write_stage_card(cfg, trainer, result, "Stage-specific words.", extra_hyperparameters={"beta": 0.1},
                            extra_columns={"Rewards/chosen": "eval_rewards/chosen"}).read_text()
    assert card.startswith("---\nlicense: apache-2.0\nbase_model: google/gemma-3-270m\nlibrary_name: peft\n")
    assert "- name: run-a\n" in card and "- zephyr/demo_data\n" in card and "Stage-specific words.\n" in card
    for line in ["- distributed_type: multi-GPU", "- num_devices: 2", "- num_epochs: 1.5", "- beta: 0.1",
                 "- Loss: 0.5", "- Rewards/chosen: 0.25", "| 0.75 | 1.5 | 6 | 0.5 | 0.25 |"]:
        assert line + "\n" in card, line
