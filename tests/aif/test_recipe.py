"""The demo AIF recipe end to end through the CLI: the embedded model answers real UltraFeedback prompts at four
sampling settings, the scripted UltraFeedback judge rates them, and `zephyr dpo` trains on the pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zephyr.cli import main as zephyr

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_recipe_pairs_train_with_dpo(uf_judge, uf_dir, shared_data, tiny_model_dir, tmp_path):
    out = tmp_path / "aif"
    prompts = shared_data / "ultrafeedback_binarized_sample" / "eval_200.jsonl"
    assert zephyr(["aif", "--config", str(REPO / "recipes" / "demo-aif" / "aif.yaml"), "--prompts", str(prompts),
                   "--max_prompts", "3", "--max_new_tokens", "8", "--judge_url", uf_judge.url,
                   "--ultrafeedback_dir", str(uf_dir), "--output_dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["aif_prompts"] == 3 and report["aif_completions"] == 12 and report["aif_aspect_calls"] == 12
    assert report["aif_pairs_written"] == 3 and report["rule"] == "overall_score"
    completions = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert {c["model"] for c in completions} == {"gemma-t1", "gemma-t0.7", "gemma-t0.3", "gemma-top40"}
    first = json.loads(prompts.read_text().splitlines()[0])["prompt"]
    assert any(s.get("instruction") == first for s in uf_judge.judge.seen)

    # the DPO stage reads the pairs as they are (a tiny model stands in for the embedded one: speed only)
    dpo = tmp_path / "dpo"
    assert zephyr(["dpo", "--config", str(REPO / "recipes" / "demo-aif" / "dpo.yaml"),
                   "--model", str(tiny_model_dir("mistral")), "--chat_template", "zephyr",
                   "--dataset_mixer", json.dumps({str(out / "pairs.jsonl"): 1.0}), "--test_split_size", "0",
                   "--max_steps", "1", "--per_device_train_batch_size", "3", "--use_lora", "false",
                   "--reference", "copy", "--output_dir", str(dpo), "--report_to", "jsonl",
                   "--progress_bar", "false", "--logging_steps", "1"]) == 0
    logged = [json.loads(line) for line in (dpo / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in record for record in logged)
