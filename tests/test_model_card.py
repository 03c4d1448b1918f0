"""Model card: published-Zephyr layout, hyperparameters in order, results table with extra (DPO) columns."""

from __future__ import annotations

from zephyr.model_card import hyperparameters, render_model_card, results_rows
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
