"""lm-eval through zephyr: the chat template only when asked, presets' per-task few-shot counts and figures, on
local task YAMLs (no hub) and a tiny model."""

from __future__ import annotations

import json

import pytest

from zephyr.errors import ConfigError
from zephyr.eval import lm_eval_tasks
from zephyr.eval.cli import EvalConfig, record, run
from zephyr.eval.lm_eval_tasks import Figure, Preset


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    from zephyr.models import ModelConfig, load_tokenizer

    folder = tmp_path_factory.mktemp("lm-eval") / "model"
    folder.mkdir()
    for item in tiny_model_dir("llama").iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    load_tokenizer(ModelConfig(model=str(folder), chat_template="zephyr")).save_pretrained(folder)
    return folder


TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
    train: {data}
test_split: test
fewshot_split: train
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    for name, pairs in (("sums", [(1, 2), (3, 4), (5, 6)]), ("sums_b", [(7, 1), (2, 2)]), ("sums_c", [(4, 4)])):
        data = folder / f"{name}.jsonl"
        data.write_text("".join(json.dumps({"question": f"What is {a}+{b}?", "choices": [str(a + b), str(a + b + 1)],
                                            "label": 0}) + "\n" for a, b in pairs))
        (folder / f"{name}.yaml").write_text(TASK.format(name=f"zephyr_{name}", data=data))
    (folder / "group.yaml").write_text("group: zephyr_group\ntask:\n  - zephyr_sums_b\n  - zephyr_sums_c\n"
                                       "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n")
    return folder


@pytest.mark.slow
def test_the_chat_template_when_asked(model_dir, tasks):
    pytest.importorskip("lm_eval")
    results = lm_eval_tasks.evaluate(str(model_dir), {"zephyr_sums": 0}, True, batch_size=2,
                                     include_path=str(tasks), log_samples=True)
    context, choice = results["samples"]["zephyr_sums"][0]["arguments"][0]
    assert context == "<|user|>\nQuestion: What is 1+2?\nAnswer:</s>\n<|assistant|>\n" and choice.strip() == "3"
    per_sample = [s["acc"] for s in results["samples"]["zephyr_sums"]]
    assert lm_eval_tasks.summarize(results)["zephyr_sums"]["acc"] == pytest.approx(sum(per_sample) / 3)


@pytest.mark.slow
def test_a_preset_runs_its_tasks_with_their_shots_and_makes_its_figures(model_dir, tasks, monkeypatch, tmp_path):
    pytest.importorskip("lm_eval")
    card = {"dataset_name": "Sums (2-shot)", "dataset_type": "sums", "metric_type": "acc", "metric_name": "accuracy"}
    preset = Preset((Figure("Sums (2-shot)", ("zephyr_sums",), ("acc,none",), 2, card),
                     Figure("Group (0-shot)", ("zephyr_group",), ("acc_norm,none", "acc,none"), 0,
                            {**card, "dataset_name": "Group (0-shot)"})), apply_chat_template=False, average=True)
    monkeypatch.setitem(lm_eval_tasks.PRESETS, "local", preset)
    config = EvalConfig(benchmark="lm_eval", model=str(model_dir), preset="local", include_path=str(tasks),
                        batch_size=2, output_dir=str(tmp_path / "out"))
    evaluated = []
    evaluate = lm_eval_tasks.evaluate
    monkeypatch.setattr(lm_eval_tasks, "evaluate", lambda *a, **k: evaluated.append(
        evaluate(*a, **{**k, "log_samples": True})) or evaluated[-1])
    report = run(config)
    assert report["num_fewshot"] == {"zephyr_sums": 2, "zephyr_group": 0} and not report["apply_chat_template"]
    # two shots before the 2-shot task's question, none before the group's; no chat template
    (results,) = evaluated
    contexts = {task: [s["arguments"][0][0] for s in samples] for task, samples in results["samples"].items()}
    assert all(c.startswith("Question:") and c.count("Question:") == 3 for c in contexts["zephyr_sums"])
    assert all(c.count("Question:") == 1 for c in contexts["zephyr_sums_b"] + contexts["zephyr_sums_c"])
    # figures: percent, the group as the unweighted mean of its tasks, and the table's average
    acc = {task: sum(s["acc"] for s in samples) / len(samples) for task, samples in results["samples"].items()}
    group = round(100 * (acc["zephyr_sums_b"] + acc["zephyr_sums_c"]) / 2, 2)  # not weighted by size (2 and 1)
    sums = report["table"]["Sums (2-shot)"]
    assert sums == round(100 * lm_eval_tasks.summarize(results)["zephyr_sums"]["acc"], 2)
    assert report["table"]["Group (0-shot)"] == group
    assert report["table"]["Average"] == round((sums + group) / 2, 2)
    # and into the model folder's card, once per figure however often it runs
    record(config, report)
    text = (model_dir / "README.md").read_text()
    assert text.count("name: Group (0-shot)") == 1 and f"| Group (0-shot) | accuracy | {group} |" in text


def test_plan_presets_shots_and_template_switch():
    runs, template = lm_eval_tasks.plan([], "open_llm_v1", None, [], None)
    assert runs == {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0, "winogrande": 5,
                    "gsm8k": 5} and template is False
    runs, template = lm_eval_tasks.plan(["piqa"], "open_llm_v1", 3, ["gsm8k=8"], True)
    assert runs["piqa"] == 3 and runs["gsm8k"] == 8 and template is True
    runs, template = lm_eval_tasks.plan([], "open_llm_v2", None, [], None)
    assert template is True and set(runs) == {"leaderboard_ifeval", "leaderboard_bbh", "leaderboard_math_hard",
                                              "leaderboard_gpqa", "leaderboard_musr", "leaderboard_mmlu_pro"}
    assert set(runs.values()) == {None}  # the leaderboard YAMLs carry their shots
    runs, template = lm_eval_tasks.plan([], "nous", None, [], None)
    assert set(runs.values()) == {0} and template is False and len(runs) == 1 + 7 + 1 + 14
    assert lm_eval_tasks.plan(["arc_easy"], "", None, [], None) == ({"arc_easy": None}, False)


def test_nous_figures_average_as_llm_autoeval(shared_data):
    """The gemma card's AGIEval and GPT4All figures are the plain means of the per-task values it lists."""
    agieval = {"agieval_aqua_rat": 25.20, "agieval_logiqa_en": 35.94, "agieval_lsat_ar": 21.74,
               "agieval_lsat_lr": 32.55, "agieval_lsat_rc": 42.75, "agieval_sat_en": 53.40,
               "agieval_sat_en_without_passage": 33.98, "agieval_sat_math": 28.18}
    gpt4all_norm = {"arc_challenge": 52.47, "arc_easy": 74.75, "hellaswag": 78.00, "openbookqa": 37.80,
                    "piqa": 77.80}
    gpt4all_acc = {"boolq": 79.69, "winogrande": 64.09}
    results = {"results": {**{t: {"acc_norm,none": v / 100, "acc,none": 0.0} for t, v in agieval.items()},
                           **{t: {"acc_norm,none": v / 100, "acc,none": 0.0} for t, v in gpt4all_norm.items()},
                           **{t: {"acc,none": v / 100} for t, v in gpt4all_acc.items()},
                           "truthfulqa_mc2": {"acc,none": 0.5219},
                           **{t: {"acc,none": 0.5} for t in lm_eval_tasks.BIGBENCH}},
               "group_subtasks": {"agieval_nous": list(agieval)}}
    table = lm_eval_tasks.preset_table(results, "nous")
    card = (shared_data.parent / "model_cards" / "zephyr-7b-gemma-v0.1.md").read_text()
    assert "|  34.22|  66.37|     52.19|" in card
    assert (table["AGIEval"], table["GPT4All"], table["TruthfulQA"]) == (34.22, 66.37, 52.19)
    assert table["Average"] == round((34.22 + 66.37 + 52.19 + 50.0) / 4, 2)


def test_settings_errors():
    with pytest.raises(ConfigError, match="--tasks .* or --preset"):
        EvalConfig(benchmark="lm_eval")
    with pytest.raises(ConfigError, match="--preset: unknown 'open_llm_v3'"):
        EvalConfig(benchmark="lm_eval", preset="open_llm_v3")
    with pytest.raises(ConfigError, match="--task_fewshot: 'arc=x' is not TASK=N"):
        EvalConfig(benchmark="lm_eval", tasks=["arc"], task_fewshot=["arc=x"])
