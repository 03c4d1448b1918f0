"""`zephyr run` end to end on a tiny model: every stage's output, the summary, and reuse on a second run; the
evaluation reads the SFT model's held-out scores from the DPO stage's folder."""

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from zephyr.cli import main as zephyr
from zephyr.dpo import tokenize as dpo_tokenize
from zephyr.dpo.evaluate import REFERENCE_SCORES, PairScores, read_pair_scores, write_pair_scores
from zephyr.dpo.tokenize import TokenizedPair

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
IFEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ifeval" / "input_data.jsonl"


def tiny_recipe(folder: Path, model: Path) -> Path:
    for name in ("sft.yaml", "dpo.yaml"):
        recipe = yaml.safe_load((RECIPES / "demo" / name).read_text())
        recipe.update(dtype="float32", max_steps=2, progress_bar=False, max_eval_samples=8)
        if name == "sft.yaml":
            recipe["model"] = str(model)
        (folder / name).write_text(yaml.safe_dump(recipe))
    return folder


@pytest.mark.slow
def test_run_all_stages_then_reuse(tiny_model_dir, tmp_path, capsys, monkeypatch):
    recipe = tiny_recipe(tmp_path, tiny_model_dir("llama"))
    out = tmp_path / "out"
    argv = ["run", str(recipe), "--output_dir", str(out), "--max_new_tokens", "4",
            "--dpo_overrides", json.dumps({"ref_cache_dir": str(tmp_path / "cache")}),
            "--sample_prompts", json.dumps(["Hello?", "What is 2 plus 2?"]),
            "--ifeval_data", str(IFEVAL), "--ifeval_prompts", "3", "--ifeval_max_new_tokens", "4"]
    assert zephyr(argv) == 0
    for path in ("sft/README.md", "sft/model.safetensors", "dpo/adapter_model.safetensors",
                 f"dpo/{REFERENCE_SCORES}", "final/model.safetensors", "eval.json", "samples.jsonl"):
        assert (out / path).is_file(), path
    assert not (out / "sft-merged").exists()  # the recipe's SFT is a full fine-tune: its folder is the model
    result = json.loads((out / "eval.json").read_text())
    assert result["pairs"] == 8 and 0 <= result["dpo"]["rewards/accuracies"] <= 1
    card = (out / "final" / "README.md").read_text()
    assert "| Training Loss | Epoch | Step | Validation Loss | Rewards/chosen |" in card
    assert "## Evaluation on held-out preference pairs" in card
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2
    ifeval_result = json.loads((out / "ifeval.json").read_text())
    assert list(ifeval_result["models"]) == ["base", "sft", "final"] and ifeval_result["prompts"] == 3
    gains = ifeval_result["prompt_loose_gains"]  # from the three models' answer files, re-checked
    assert list(gains) == ["sft - base", "final - base", "final - sft"] and gains["final - sft"]["prompts"] == 3
    for name, gain in gains.items():
        after, before = (ifeval_result["models"][m]["prompt_level_loose"] for m in name.split(" - "))
        assert gain["points"] == pytest.approx(after - before, abs=0.02)
    assert "## IFEval" in card and "| final |" in card
    first = capsys.readouterr().out
    assert "=== zephyr run: summary ===" in first and "preference accuracy SFT" in first
    # the SFT model is the DPO reference, whose held-out log-probs the DPO stage already computed
    assert "read from the DPO stage's reference cache" in first

    # a second run reuses the finished SFT and DPO runs and does not train again; its evaluation tokenizes the
    # held-out pairs only (once per model's tokenizer), never the training split
    tokenized = []

    def tokenize_pairs(pairs, *args, **kwargs):
        tokenized.append(len(pairs))
        return real_tokenize_pairs(pairs, *args, **kwargs)

    real_tokenize_pairs = dpo_tokenize.tokenize_pairs
    monkeypatch.setattr(dpo_tokenize, "tokenize_pairs", tokenize_pairs)
    assert zephyr(argv + ["--stages", "sft", "dpo", "eval", "card"]) == 0
    assert tokenized == [8, 8]
    monkeypatch.undo()
    second = capsys.readouterr().out
    assert "reusing the finished SFT run" in second and "reusing the finished DPO run" in second
    assert "=== zephyr run: sft ===" not in second and "=== zephyr run: dpo ===" not in second
    assert (out / "final" / "README.md").read_text().count("## Evaluation on held-out") == 1

    # without the DPO stage's reference scores the SFT model is scored again: the same figures
    (out / "dpo" / REFERENCE_SCORES).unlink()
    assert zephyr(argv + ["--stages", "eval"]) == 0
    assert "reference cache" not in capsys.readouterr().out
    again = json.loads((out / "eval.json").read_text())
    assert again["sft"]["preference_accuracy"] == result["sft"]["preference_accuracy"]
    for name, value in result["dpo"].items():
        assert again["dpo"][name] == pytest.approx(value, abs=1e-4), name


@pytest.mark.slow
def test_a_lora_sft_is_merged_and_the_merged_model_is_the_dpo_reference(tiny_model_dir, tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, tiny_model_dir("llama"))
    out = tmp_path / "out"
    argv = ["run", str(recipe), "--output_dir", str(out), "--sft_overrides", json.dumps({"use_lora": True}),
            "--dpo_overrides", json.dumps({"ref_cache_dir": str(tmp_path / "cache"), "max_steps": 1})]
    assert zephyr(argv + ["--stages", "sft", "dpo"]) == 0
    assert (out / "sft" / "adapter_model.safetensors").is_file() and not (out / "sft" / "model.safetensors").exists()
    assert (out / "sft-merged" / "model.safetensors").is_file()
    assert yaml.safe_load((out / "dpo" / "recipe.yaml").read_text())["model"] == str(out / "sft-merged")
    capsys.readouterr()
    # a later run of the evaluation alone finds the merged SFT model without the SFT stage
    assert zephyr(argv + ["--stages", "eval"]) == 0
    assert json.loads((out / "eval.json").read_text())["pairs"] == 8


@pytest.mark.slow
def test_a_killed_stage_continues_from_its_newest_checkpoint(tiny_model_dir, tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, tiny_model_dir("llama"))
    out = tmp_path / "out"
    argv = ["run", str(recipe), "--output_dir", str(out), "--stages", "sft"]
    assert zephyr(argv + ["--sft_overrides", json.dumps({"max_steps": 3, "save_steps": 1, "save_total_limit": 0})]) == 0
    assert (out / "sft" / "checkpoint-2" / "trainer_state.json").is_file()
    # what a run killed after its second checkpoint leaves: no third checkpoint, no card
    shutil.rmtree(out / "sft" / "checkpoint-3")
    (out / "sft" / "README.md").unlink()
    capsys.readouterr()

    assert zephyr(argv + ["--sft_overrides", json.dumps({"max_steps": 3, "save_steps": 1})]) == 0
    second = capsys.readouterr().out
    assert "resumed from" in second and "checkpoint-2 (step 2)" in second
    state = json.loads((out / "sft" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and (out / "sft" / "README.md").is_file()

    # --reuse false starts over, and drops the old checkpoints a later resume would otherwise pick up
    assert zephyr(argv + ["--reuse", "false", "--sft_overrides", json.dumps({"max_steps": 1, "save_steps": 1})]) == 0
    assert "resumed from" not in capsys.readouterr().out
    assert sorted(p.name for p in (out / "sft").glob("checkpoint-*")) == ["checkpoint-1"]


def test_reference_scores_are_read_only_for_the_same_pairs_and_model(tmp_path):
    pairs = [TokenizedPair([1, 2], [3], [4, 5], index=i) for i in (0, 2, 3)]
    scores = PairScores(torch.tensor([-1.5, -2.25, -3.0]), torch.tensor([-4.0, -0.5, -6.125]))
    identity = {"pairs": "p", "weights": "w", "dtype": "torch.float32"}
    path = write_pair_scores(tmp_path / REFERENCE_SCORES, pairs, scores, identity)
    assert [p.name for p in tmp_path.iterdir()] == [REFERENCE_SCORES]  # no staging file left behind

    read = read_pair_scores(path, [pairs[2], pairs[0]], identity)  # looked up by index, in the asked order
    assert read.chosen.tolist() == [-3.0, -1.5] and read.rejected.tolist() == [-6.125, -4.0]
    assert read_pair_scores(path, pairs, {**identity, "weights": "other"}) is None
    assert read_pair_scores(path, pairs, {**identity, "dtype": "torch.bfloat16"}) is None
    assert read_pair_scores(path, [TokenizedPair([1], [2], [3], index=1)], identity) is None
    assert read_pair_scores(tmp_path / "missing.safetensors", pairs, identity) is None


def test_ifeval_stage_scores_base_sft_and_final_on_one_fixed_subset(tmp_path, monkeypatch):
    """The stage scores the three models on the same evenly spread prompts, greedy, and reuses a finished report."""
    from types import SimpleNamespace

    from zephyr import pipeline
    from zephyr.eval import cli as eval_cli
    from zephyr.eval import ifeval

    calls = []

    def score(config):
        rows = [json.loads(line) for line in Path(config.data).read_text().splitlines()]
        calls.append((config.model, [r["key"] for r in rows], config.temperature, config.max_new_tokens,
                      config.engine))
        report = {k: 10.0 * len(calls) for k in pipeline.IFEVAL_NUMBERS}
        report["prompts"] = len(rows)
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / "report.json").write_text(json.dumps(report))
        return report

    monkeypatch.setattr(eval_cli, "run_ifeval", score)
    in_this_process = contextlib.nullcontext(lambda function, *args: function(*args))  # sees the patch
    monkeypatch.setattr(pipeline, "fresh_process", lambda: in_this_process)
    passes = {"base": [False] * 5, "sft": [True] + [False] * 4, "final": [True] * 3 + [False] * 2}
    monkeypatch.setattr(ifeval, "prompt_passes", lambda path, rows: passes[Path(path).parent.name][:len(rows)])
    cfg = pipeline.RunConfig(output_dir=str(tmp_path), ifeval_data=str(IFEVAL), ifeval_prompts=5,
                             ifeval_max_new_tokens=1280)
    sft, dpo = SimpleNamespace(model="embedded", dtype="auto", chat_template="zephyr"), SimpleNamespace(model="m/sft")
    result = pipeline.run_ifeval(cfg, sft, dpo, tmp_path / "final")
    keys = [json.loads(line)["key"] for line in IFEVAL.read_text().splitlines()]
    expected = [keys[i * 541 // 5] for i in range(5)]
    models = ("embedded", "m/sft", str(tmp_path / "final"))
    assert calls == [(m, expected, 0.0, 1280, "transformers") for m in models]
    assert result["models"]["final"]["prompt_level_loose"] == 30.0 and result["prompts"] == 5
    section = pipeline.ifeval_section(result)
    assert "| base | 10.0 | 10.0 | 10.0 | 10.0 |" in section and "| final | 30.0 |" in section
    # paired gains with their intervals (hand-computed in tests/eval/test_ifeval.py's paired_difference test)
    assert result["prompt_loose_gains"]["final - base"] == {"points": 60.0, "ci95": [11.99, 100.0], "prompts": 5}
    assert "final - base +60.0 [+12.0, +100.0]" in section and "sft - base +20.0" in section
    assert pipeline.run_ifeval(cfg, sft, dpo, tmp_path / "final") == result and len(calls) == 3  # reused
    # other settings or another subset: every model is scored again, none of the old reports is reused
    for changed in (dict(ifeval_max_new_tokens=512), dict(ifeval_prompts=6), dict(ifeval_engine="generate")):
        before = len(calls)
        again = pipeline.run_ifeval(dataclasses.replace(cfg, **changed), sft, dpo, tmp_path / "final")
        assert len(calls) == before + 3 and again["prompts"] == changed.get("ifeval_prompts", 5)


def test_fresh_process_runs_each_call_in_one_child_process_and_returns_its_result():
    import os

    from zephyr import pipeline

    with pipeline.fresh_process() as call:
        child = call(os.getpid)
        assert child != os.getpid()
        assert call(divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):  # the child's error reaches the caller
            call(divmod, 1, 0)
        assert call(os.getpid) == child  # started once, for every call in the block


def test_an_unknown_ifeval_engine_is_refused_before_anything_runs(tmp_path, capsys):
    assert zephyr(["run", str(RECIPES / "demo"), "--output_dir", str(tmp_path / "out"),
                   "--ifeval_engine", "llama.cpp"]) == 2
    assert "ifeval_engine" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_ifeval_stage_is_left_out_with_the_reason_when_it_cannot_run(tmp_path, monkeypatch, capsys):
    from zephyr import pipeline
    from zephyr.errors import DataError
    from zephyr.eval import ifeval

    def offline(path=None):
        raise DataError("cannot be loaded from the Hugging Face Hub", path or ifeval.HUB_ID)

    monkeypatch.setattr(ifeval, "load_prompts", offline)
    assert pipeline.prepare_ifeval(pipeline.RunConfig(output_dir=str(tmp_path))) is None
    assert "IFEval stage is left out" in capsys.readouterr().out
    with pytest.raises(DataError):  # a local file the user named must be right
        pipeline.prepare_ifeval(pipeline.RunConfig(output_dir=str(tmp_path), ifeval_data="mine.jsonl"))
