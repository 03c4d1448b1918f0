"""Model card: published-Zephyr layout, hyperparameters in order, results table with extra (DPO) columns, and
the one assembly both training stages call."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from zephyr.model_card import model_index, hyperparameters, render_model_card, results_rows, write_stage_card
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


def test_eval_results_in_the_zephyr_cardsmodel_index_format(shared_data):
    """open_llm_v1's figures and MT-Bench's score describe themselves exactly as zephyr-7b-gemma's card does."""
    import yaml

    from zephyr.eval.card_results import lm_eval_results, mt_bench_results
    from zephyr.eval.lm_eval_tasks import PRESETS

    card = (shared_data.parent / "model_cards" / "zephyr-7b-gemma-v0.1.md").read_text()
    published = yaml.safe_load(card.split("---\n")[1])["model-index"][0]["results"]
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in published}
    table = {f.label: values[f.card["dataset_name"]] for f in PRESETS["open_llm_v1"].figures}
    ours = lm_eval_results({"preset": "open_llm_v1", "table": table, "apply_chat_template": False})
    ours += mt_bench_results({"score": 7.8125, "judge": "gpt-4"})
    index = model_index("zephyr-7b-gemma", ours)[0]["results"]
    strip = lambda r: {k: r[k] for k in ("task", "dataset", "metrics")}  # noqa: E731 (sources differ: our runs)
    assert sorted(map(str, map(strip, index))) == sorted(map(str, map(strip, published)))


def test_eval_results_update_the_card_without_duplicates(tmp_path):
    from huggingface_hub import EvalResult

    from zephyr.model_card import record_eval_results

    def result(value, metric="score", source="FastChat llm_judge, judge gpt-4"):
        return EvalResult(task_type="text-generation", dataset_type="unknown", dataset_name="MT-Bench",
                          metric_type="unknown", metric_name=metric, metric_value=value,
                          source_url="https://github.com/lm-sys/FastChat", source_name=source)

    path = tmp_path / "README.md"
    path.write_text(render_model_card(model_name="zephyr-demo-dpo", base_model="google/gemma-3-270m",
                                      datasets=["zephyr/demo_data"], hyperparameters={"beta": 0.1}, results=[]))
    before = path.read_text()
    record_eval_results(path, [result(6.5)])
    record_eval_results(path, [result(7.25), result(7.0, "turn 1")])
    record_eval_results(path, [result(5.5, source="FastChat llm_judge, judge local")])
    text = path.read_text()
    front, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    assert front.startswith("license: apache-2.0\nbase_model: google/gemma-3-270m\ntags:\n- zephyr\n")
    assert "model-index:\n- name: zephyr-demo-dpo\n  results:\n  - task:\n      type: text-generation\n" in front
    assert front.count("name: MT-Bench") == 3 and "value: 6.5" not in front and "value: 7.25" in front
    assert body.count("## Evaluation results") == 1
    assert "| MT-Bench | score | 7.25 | FastChat llm_judge, judge gpt-4 |" in body
    assert "| MT-Bench | turn 1 | 7.0 |" in body
    assert "| MT-Bench | score | 5.5 | FastChat llm_judge, judge local |" in body
    assert body.index("## Evaluation results") < body.index("## Model description")
    assert body.replace(body[body.index("<!-- zephyr"):body.index("end -->") + 7] + "\n\n", "") == \
        before.split("---\n", 2)[2]  # the rest of the card is untouched


def test_eval_results_make_a_card_where_there_is_none(tmp_path):
    from zephyr.eval.card_results import record_in_card

    report = {"benchmark": "mt_bench", "score": 6.123, "judge": "gpt-4"}
    assert record_in_card(str(tmp_path / "no-such-folder"), report) is None
    assert record_in_card("HuggingFaceH4/zephyr-7b-beta", report) is None
    card = record_in_card(str(tmp_path), report).read_text()
    assert card.startswith(f"---\nmodel-index:\n- name: {tmp_path.name}\n")
    assert "value: 6.12" in card and f"# {tmp_path.name}" in card and "| MT-Bench | score | 6.12 |" in card


def test_every_benchmark_report_gives_its_card_results():
    from zephyr.eval.card_results import RESULTS

    def described(report):
        return [(r.dataset_name, r.metric_name or r.metric_type, r.metric_value, r.dataset_args, r.source_name)
                for r in RESULTS[report["benchmark"]](report)]

    source = "alpaca_eval, annotator weighted_alpaca_eval_gpt4_turbo"
    assert described({"benchmark": "alpaca_eval", "win_rate": 90.604, "length_controlled_winrate": 50.126,
                      "annotator": "weighted_alpaca_eval_gpt4_turbo"}) == [
        ("AlpacaEval", "length-controlled win rate", 50.13, None, source),
        ("AlpacaEval", "win rate", 90.6, None, source)]
    assert described({"benchmark": "ifeval", "prompt_level_strict": 40.0, "instruction_level_loose_acc": 55.5}) == [
        ("IFEval (0-Shot)", "prompt level strict accuracy", 40.0, {"num_few_shot": 0}, "IFEval"),
        ("IFEval (0-Shot)", "instruction level loose accuracy", 55.5, {"num_few_shot": 0}, "IFEval")]
    assert described({"benchmark": "lm_eval", "apply_chat_template": False, "num_fewshot": {"arc_easy": 25},
                      "results": {"arc_easy": {"alias": "arc_easy", "acc": 0.51234, "acc_stderr": 0.01}}}) == [
        ("arc_easy", "acc", 51.23, {"num_few_shot": 25}, "lm-evaluation-harness, no chat template")]
    assert described({"benchmark": "mt_bench", "score": None, "judge": "gpt-4"}) == []


def test_a_card_that_cannot_be_read_is_a_data_error(tmp_path):
    import pytest
    from huggingface_hub import EvalResult

    from zephyr.errors import DataError
    from zephyr.model_card import record_eval_results

    result = EvalResult(task_type="text-generation", dataset_type="unknown", dataset_name="MT-Bench",
                        metric_type="unknown", metric_value=7.0)
    path = tmp_path / "README.md"
    path.write_text("---\nmodel-index:\n- name: m\n  results:\n  - metrics: 3\n---\nbody\n")
    with pytest.raises(DataError, match="README.md: field 'model-index'"):
        record_eval_results(path, [result])
    path.write_text("---\nlicense: [unclosed\n---\nbody\n")
    with pytest.raises(DataError, match="front matter is not YAML"):
        record_eval_results(path, [result])
