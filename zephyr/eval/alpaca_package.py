"""The `alpaca-eval` package (the official AlpacaEval code, `pip install zephyr[eval]`): its judge configs and
prompts, its pairwise annotator (order randomisation, prompt filling, parsers, dropping unparsable judgements) and
its metrics (win rate, standard error, length-controlled win rate). Zephyr only supplies the judge's replies.

alpaca-eval 0.6.6 imports `pkg_resources` (for two version helpers), which setuptools >= 81 no longer ships; when it
is missing, a stand-in with exactly those two helpers is visible while the package imports, and removed after.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import sys
import time
import types
from pathlib import Path
from unittest import mock

from ..errors import ConfigError

AE1 = "alpaca_eval_gpt4"  # AlpacaEval 1: GPT-4 ranks the two outputs; reference text_davinci_003
AE2 = "weighted_alpaca_eval_gpt4_turbo"  # AlpacaEval 2: P(token) of GPT-4 Turbo; reference gpt4_1106_preview
# the hub config (tatsu-lab/alpaca_eval) holding each version's 805 instructions with its reference outputs
REFERENCE_CONFIG = {AE1: "alpaca_eval", AE2: "alpaca_eval_gpt4_baseline"}
INSTALL_HINT = "AlpacaEval needs the alpaca-eval package: pip install 'zephyr[eval]' (or alpaca-eval==0.6.6)"


def _pkg_resources_stand_in() -> types.ModuleType:
    from packaging.version import parse

    module = types.ModuleType("pkg_resources")
    module.parse_version = parse
    module.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
    return module


def package():
    """The imported `alpaca_eval` package (ConfigError with the install command when it is missing)."""
    if "alpaca_eval.metrics" in sys.modules:
        return sys.modules["alpaca_eval"]
    try:
        importlib.import_module("pkg_resources")
        stand_in = False
    except ImportError:
        stand_in = True
    if stand_in:
        sys.modules["pkg_resources"] = _pkg_resources_stand_in()
    root_level = logging.getLogger().level  # alpaca-eval sets the root logger to INFO when it is imported
    try:
        import alpaca_eval  # noqa: F401
        import alpaca_eval.metrics  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"{INSTALL_HINT} ({err})") from None
    finally:
        logging.getLogger().setLevel(root_level)
        if stand_in:
            del sys.modules["pkg_resources"]
    return sys.modules["alpaca_eval"]


def configs_dir() -> Path:
    return Path(package().constants.EVALUATORS_CONFIG_DIR)


def check_annotator(name: str) -> None:
    if name not in REFERENCE_CONFIG:
        raise ConfigError(f"--annotator: {name!r} is not one of {', '.join(REFERENCE_CONFIG)}")
    if not (configs_dir() / name / "configs.yaml").is_file():
        raise ConfigError(f"--annotator: the alpaca-eval package has no config {name!r}")


def judge_settings(name: str) -> dict:
    """The annotator's config from the package (prompt_template, completions_kwargs, parser, ...)."""
    ae = package()
    (config,) = ae.utils.load_configs(configs_dir() / name / "configs.yaml").values()
    return config


def _completions(judge, prompts, model_name=None, max_tokens=1024, temperature=0.0, logprobs=False,
                 top_logprobs=None, **_ignored):
    """alpaca-eval's `fn_completions` contract, answered by a zephyr judge: the filled chat-ML prompts become chat
    messages (as alpaca-eval's openai decoder does), and each reply comes back in the OpenAI choice layout that
    its parsers read (`completions` texts; `completions_all` with `logprobs.content[].top_logprobs`)."""
    ae = package()
    requests = []
    for prompt in prompts:
        request = {"messages": ae.utils.prompt_to_chatml(prompt.strip()), "max_tokens": int(max_tokens),
                   "temperature": float(temperature)}
        if logprobs:
            request["top_logprobs"] = int(top_logprobs or 5)
        requests.append(request)
    start = time.monotonic()
    replies = judge.chat(requests)
    seconds = (time.monotonic() - start) / max(len(prompts), 1)
    choices = []
    for reply in replies:
        choice = {"text": reply.text, "message": {"role": "assistant", "content": reply.text}}
        if reply.top_logprobs is not None:
            choice["logprobs"] = {"content": [
                {"token": max(alts, key=alts.get), "logprob": max(alts.values()),
                 "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alts.items()]}
                for alts in reply.top_logprobs]}
        choices.append(choice)
    return {"completions": [c["text"] for c in choices], "completions_all": choices,
            "price_per_example": [None] * len(choices), "time_per_example": [seconds] * len(choices)}


def annotate(judge, reference: list[dict], outputs: list[dict], annotator: str) -> list[dict]:
    """alpaca-eval's `PairwiseAnnotator.annotate_head2head(reference, outputs)` with `judge` answering the package's
    own prompts: rows in the order of `outputs`, `preference` in [1, 2] (2 = ours better) or None (unparsable)."""
    ae = package()
    from alpaca_eval.annotators import PairwiseAnnotator

    class ZephyrJudgedAnnotator(PairwiseAnnotator):
        def _initialize_annotators(self, **kwargs):
            # the package's config with its decoder (an OpenAI client) replaced by the zephyr judge
            configs = ae.utils.load_configs(self.annotators_config)
            base_dir = self.annotators_config.parents[1]
            return {name: self.SingleAnnotator(seed=self.seed, base_dir=base_dir, annotation_column=self.annotation_key,
                                               completion_column=self.completion_key,
                                               **{**config, "fn_completions": lambda prompts, **kw:
                                                  _completions(judge, prompts, **kw)}, **kwargs)
                    for name, config in configs.items()}

    check_annotator(annotator)
    with _quiet():
        annotations = ZephyrJudgedAnnotator(annotators_config=annotator, caching_path=None,
                                            base_dir=configs_dir()).annotate_head2head(
            outputs_1=reference, outputs_2=outputs)
    return annotations


def leaderboard_row(annotations: list[dict], length_controlled: bool, df_gamed: str | None = None) -> dict:
    """alpaca-eval's metrics on annotations: `get_winrate`, or for AlpacaEval 2 `get_length_controlled_winrate`
    (which needs df_gamed.csv: `df_gamed`, a local copy, else the package downloads it from the hub)."""
    package()
    import pandas as pd
    from alpaca_eval.metrics import get_winrate, glm_winrate

    frame = pd.DataFrame.from_records(annotations)
    with _quiet():
        if not length_controlled:
            row = get_winrate(frame)
        else:
            local = mock.patch.object(glm_winrate, "hf_hub_download", lambda **_: df_gamed) if df_gamed else \
                contextlib.nullcontext()
            with local:
                row = glm_winrate.get_length_controlled_winrate(frame, save_weights_dir=None,
                                                                is_warn_extreme_changes=False)
    row["avg_length"] = int(frame["output_2"].str.len().mean())
    return {key: value.item() if hasattr(value, "item") else value for key, value in row.items()}


@contextlib.contextmanager
def _quiet():
    """alpaca-eval logs every chunk at INFO; keep zephyr's output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)
