"""`zephyr eval alpaca_eval --judge_url` against `zephyr serve` of a local model: an AlpacaEval 2 preference from
the served judge's token log-probabilities, end to end over HTTP."""

from __future__ import annotations

import json
import math

import pytest

from zephyr.errors import ConfigError

from .conftest import KEY, running

try:
    from zephyr.eval import alpaca_package

    alpaca_package.package()
except ConfigError as err:
    pytest.skip(str(err), allow_module_level=True)


def m_or_m_judge(source, folder):
    """The tiny checkpoint rewired so that its next token is always 'm' or 'M', whatever the prompt, with
    P(m) > P(M): the final norm keeps one hidden unit, which the embeddings make large and positive, and the
    output layer reads only that unit, for 'm' and 'M' alone."""
    import torch

    from zephyr.models import ModelConfig, load_model, load_tokenizer

    config = ModelConfig(model=str(source))
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer)
    m, big_m = tokenizer.convert_tokens_to_ids("m"), tokenizer.convert_tokens_to_ids("M")
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 50.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[m, 0], model.lm_head.weight[big_m, 0] = 0.5, 0.4
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow  # loads and serves a model, then 4 judge requests of ~1000 tokens
def test_alpaca_eval_2_preference_from_a_served_local_judge(tiny_model_dir, shared_data, tmp_path, monkeypatch):
    from zephyr.eval.cli import EvalConfig, run
    from zephyr.sampling import Sampling
    from zephyr.serve.app import build_app
    from zephyr.serve.transformers_engine import TransformersEngine

    judge_dir = m_or_m_judge(tiny_model_dir("mistral"), tmp_path / "judge")
    engine = TransformersEngine(str(judge_dir), "judge", chat_template="zephyr", context_length=2048)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # sent to the loopback server, which requires it
    rows = json.loads((shared_data / "alpaca_eval" / "gpt4_1106_preview.model_outputs.json").read_text())[:4]
    reference = tmp_path / "reference.json"  # shortened outputs: the tiny tokenizer spends a token per letter
    reference.write_text(json.dumps([{**r, "output": r["output"][:300]} for r in rows]))
    try:
        with running(build_app(engine, Sampling(), max_tokens_limit=16, api_key=KEY)) as url:
            report = run(EvalConfig(benchmark="alpaca_eval", model="my-model", data=str(reference), limit=4,
                                    judge_url=url + "/v1", judge_model="judge", output_dir=str(tmp_path / "out")),
                         generate=lambda conversations, temperature=None: ["A short answer."] * len(conversations))
    finally:
        engine.close()
    assert report["n_total"] == 4 and report["n_unparsable"] == 0
    annotations = json.loads((tmp_path / "out" / "annotations.json").read_text())
    for row in annotations:
        top = {t["token"]: t["logprob"] for t in row["preference_raw_completion"]["logprobs"]["content"][0]["top_logprobs"]}
        assert len(top) == 5 and {"m", "M"} <= set(top)
        p_first = 1 / (1 + math.exp(top["M"] - top["m"]))  # the judge's P(the output shown as "m" is better)
        assert 0.55 < p_first < 0.95
        # ours was shown as "M" (preference 2 - P) or, order switched, as "m" (preference 1 + P)
        assert min(abs(row["preference"] - (2 - p_first)), abs(row["preference"] - (1 + p_first))) < 1e-9  # annotations.json keeps 10 decimals
    assert report["win_rate"] == pytest.approx(100 * sum(r["preference"] - 1 for r in annotations) / 4)
