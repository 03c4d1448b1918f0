"""`zephyr run recipes/demo`: SFT -> DPO -> evaluation on held-out pairs -> IFEval of base, SFT and final ->
model card -> sample chats.

The recipe folder holds `sft.yaml` and `dpo.yaml` (and optionally `run.yaml` with this command's fields).
Everything is written under `output_dir`: sft/ (the SFT model or adapter, + card), sft-merged/ (a LoRA SFT's
adapter merged in: the DPO reference), dpo/ (adapter + card + the reference's log-probs of the held-out pairs,
which the evaluation reads), final/ (the merged DPO model with its card, ready for `zephyr chat`), eval.json,
ifeval/ (per model: answers.jsonl, report.json; ifeval.json with the table and the paired gains) and
samples.jsonl. A full fine-tune's own folder (sft/, dpo/) is its model; nothing is merged. A stage
whose output is already complete is reused, and a training stage that was killed continues from its newest
checkpoint (`--reuse false` redoes all).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from .config import field, from_dict, parse_args, to_dict
from .errors import ConfigError

STAGES = ("sft", "dpo", "eval", "ifeval", "card", "chat")
IFEVAL_ENGINES = ("transformers", "generate", "vllm")  # zephyr eval's engines that load a model folder
IFEVAL_NUMBERS = ("prompt_level_strict", "prompt_level_loose", "instruction_level_strict", "instruction_level_loose")
DEFAULT_PROMPTS = [
    "What is the capital of Australia?",
    "I have 3 apples and buy 5 more. How many apples do I have now?",
    "Give me one tip for sleeping better.",
]


@dataclasses.dataclass
class RunConfig:
    """The whole recipe end to end: SFT -> DPO -> held-out preference eval -> IFEval -> model card -> sample chats."""

    recipe: str = field("recipes/demo", help="recipe folder with sft.yaml and dpo.yaml (and optionally run.yaml)")
    output_dir: str = field("runs/demo",
                            help="where the stages write (sft/, dpo/, final/, eval.json; sft-merged/ after a LoRA SFT)")
    stages: list[str] = field(list(STAGES), help="stages to run, in order: sft, dpo, eval, ifeval, card, chat")
    reuse: bool = field(True, help="skip a stage whose output is already complete and continue a killed one from its "
                                   "newest checkpoint (a rerun only redoes what is missing)")
    sft_overrides: dict[str, Any] = field({}, help="fields that replace sft.yaml's, e.g. '{\"max_steps\": 10}'")
    dpo_overrides: dict[str, Any] = field({}, help="fields that replace dpo.yaml's")
    sample_prompts: list[str] = field(DEFAULT_PROMPTS, help="user messages for the sample chats with the final model")
    max_new_tokens: int = field(96, help="longest sample reply, in tokens")
    temperature: float = field(0.0, help="sampling temperature of the sample chats (0: greedy)")
    eval_batch_size: int = field(8, help="pairs per forward pass in the held-out evaluation")
    # IFEval of base, SFT and final: a fixed subset, greedy, as IFEval's harness generates
    ifeval_data: str = field("", help="IFEval input_data.jsonl (default: the hub's google/IFEval)")
    ifeval_prompts: int = field(24, help="IFEval prompts scored, spread evenly over the 541 (0 = all; 24 take "
                                         "about 3 of the demo's 19 minutes on 2 CPU cores; "
                                         "benchmarks/ifeval_recipe.py: all)")
    ifeval_max_new_tokens: int = field(512, help="longest IFEval reply, in tokens")
    ifeval_batch_size: int = field(40, help="IFEval prompts generated together (on a CPU, 40 at once take about "
                                            "half the time of five batches of 8)")
    ifeval_engine: str = field("transformers", help="how IFEval replies are generated (zephyr eval's --engine): "
                                                    "transformers, zephyr serve's continuous batching, frees a "
                                                    "finished reply's row at once; generate waits for each "
                                                    "batch's longest reply")

    def __post_init__(self):
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"field 'stages': unknown {', '.join(unknown)}; choose from {', '.join(STAGES)}")
        if self.ifeval_engine not in IFEVAL_ENGINES:
            raise ConfigError(f"field 'ifeval_engine': {self.ifeval_engine!r} is not one of "
                              f"{', '.join(IFEVAL_ENGINES)}")


class Timer:
    """Wall-clock and CPU seconds per stage (CPU time shows what a busy shared machine hides)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        print(f"\n=== zephyr run: {name} ===", flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu


def stage_configs(cfg: RunConfig):
    from .dpo.config import DPOConfig
    from .sft.config import SFTConfig

    folder, out = Path(cfg.recipe), Path(cfg.output_dir)
    for name in ("sft.yaml", "dpo.yaml"):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder / name} not found: a recipe folder holds sft.yaml and dpo.yaml")
    sft = parse_args(SFTConfig, ["--config", str(folder / "sft.yaml")], prog="zephyr sft")
    sft = from_dict(SFTConfig, {**to_dict(sft), "output_dir": str(out / "sft"), **cfg.sft_overrides},
                    "sft_overrides")
    dpo = parse_args(DPOConfig, ["--config", str(folder / "dpo.yaml")], prog="zephyr dpo")
    sft_model = model_folder(out / "sft", out / "sft-merged", sft.use_lora)
    dpo = from_dict(DPOConfig, {**to_dict(dpo), "model": str(sft_model), "output_dir": str(out / "dpo"),
                                **cfg.dpo_overrides}, "dpo_overrides")
    return sft, dpo


def model_folder(stage_dir: Path, merged_dir: Path, lora: bool) -> Path:
    """Where a training stage's model is: a LoRA run's adapter merged into `merged_dir`, else the run's own folder."""
    return merged_dir if lora else stage_dir


def _done(folder: Path, marker: str) -> bool:
    return (folder / marker).is_file()


def _continued(stage_cfg, reuse: bool):
    """The stage's config, set to resume when an earlier (killed) run left a checkpoint in its output folder.
    Redoing a stage (reuse off) empties its output folder first, so a later resume cannot pick up a stale one."""
    from .train.checkpoint import checkpoint_dirs

    if not reuse:
        return dataclasses.replace(stage_cfg, overwrite_output_dir=True)
    if checkpoint_dirs(stage_cfg.output_dir):
        return dataclasses.replace(stage_cfg, resume=True)
    return stage_cfg


def merged(run_dir: Path, target: Path, dtype: str) -> Path:
    """A LoRA run's adapter folded into its base (a full run's folder is used as it is)."""
    from .export import ExportConfig, export, is_adapter

    if not is_adapter(run_dir):
        return run_dir
    return export(ExportConfig(output_dir=str(target), model=str(run_dir), merge_lora=True, dtype=dtype))


def evaluate(dpo_cfg, final_dir: Path, batch_size: int) -> dict:
    """Held-out pairs: preference accuracy of the SFT and the DPO model, and the DPO model's rewards vs SFT.

    The SFT model is the DPO reference: when the DPO stage precomputed its log-probs of these very pairs (same
    token ids, weights and dtype), they are read from the stage's folder instead of scoring it again. The DPO
    model is always scored here: its merged weights (in `dtype`) round differently from the adapter the stage
    evaluated, so the stage's evaluation does not give the same per-pair figures."""
    from .data import load_preference_splits
    from .data.sources import resolve_sources
    from .dpo.evaluate import REFERENCE_SCORES, preference_accuracy, read_pair_scores, reward_metrics, score_pairs
    from .dpo.tokenize import tokenize_pairs
    from .dpo.train import held_out_identity
    from .models import ModelConfig, load_model, load_tokenizer, resolve_dtype
    from .train.precision import autocast, master_weights

    sources = resolve_sources(dpo_cfg.dataset_mixer)
    splits = load_preference_splits(dataclasses.replace(dpo_cfg, dataset_mixer=sources))
    scores = {}
    for name, where in (("sft", dpo_cfg.model), ("dpo", str(final_dir))):
        model_cfg = ModelConfig(model=where, dtype=dpo_cfg.dtype, chat_template=dpo_cfg.chat_template)
        tokenizer = load_tokenizer(model_cfg)
        pairs, _ = tokenize_pairs(splits.test, tokenizer, model_cfg.chat_template, dpo_cfg.max_length,
                                  dpo_cfg.max_prompt_length)
        if name == "sft":
            stage_file = Path(dpo_cfg.output_dir) / REFERENCE_SCORES
            reused = read_pair_scores(stage_file, pairs,
                                      held_out_identity(dpo_cfg, pairs, resolve_dtype(dpo_cfg.dtype)))
            if reused is not None:
                scores[name] = reused
                print(f"zephyr run: SFT log-probs of the {len(pairs)} held-out pairs read from the DPO stage's "
                      f"reference cache ({stage_file})", flush=True)
                continue
        # frozen: the weights stay in the dtype they loaded in (no fp32 copy of the 262k-token head), and run
        # under the autocast the DPO stage computed its reference in, so the rewards compare like with like
        model = load_model(model_cfg, tokenizer).requires_grad_(False)
        mixed_precision = master_weights(model, model.config.dtype, dpo_cfg.low_precision_weights)
        with autocast(next(model.parameters()).device, mixed_precision):
            scores[name] = score_pairs(model, pairs, batch_size, tokenizer.pad_token_id,
                                       desc=f"scoring {name} model")
        del model
    result = {"pairs": len(scores["dpo"].chosen), "beta": dpo_cfg.beta,
              "sft": {"preference_accuracy": preference_accuracy(scores["sft"])},
              "dpo": {"preference_accuracy": preference_accuracy(scores["dpo"]),
                      **reward_metrics(scores["dpo"], scores["sft"], dpo_cfg.beta)}}
    return result


def eval_section(result: dict) -> str:
    sft, dpo = result["sft"], result["dpo"]
    return "\n".join([
        "", "## Evaluation on held-out preference pairs", "",
        f"{result['pairs']} held-out pairs. Preference accuracy: share of pairs where the model gives the chosen "
        "reply a higher log-probability than the rejected one. Rewards/accuracies: the DPO metric, "
        f"beta * (log pi - log pi_SFT), beta = {result['beta']}.", "",
        "| Model | Preference accuracy | Rewards/accuracies vs SFT | Rewards/margins vs SFT |",
        "|:--|:--:|:--:|:--:|",
        f"| SFT | {sft['preference_accuracy']:.4f} | (reference) | (reference) |",
        f"| DPO | {dpo['preference_accuracy']:.4f} | {dpo['rewards/accuracies']:.4f} | {dpo['rewards/margins']:.4f} |",
        ""])


def ifeval_models(sft_cfg, dpo_cfg, final_dir: Path) -> dict[str, str]:
    return {"base": sft_cfg.model, "sft": dpo_cfg.model, "final": str(final_dir)}


def prepare_ifeval(cfg: RunConfig) -> Path | None:
    """The fixed IFEval subset written to <output_dir>/ifeval/prompts.jsonl, and the checkers' data checked, before
    any training. Without the `[eval]` extra, or without hub access when no --ifeval_data is named, the stage is
    left out with the reason printed (a bad local file is an error). -> the subset file, or None."""
    from .data.io import write_rows
    from .errors import DataError
    from .eval import ifeval

    try:
        rows = ifeval.load_prompts(cfg.ifeval_data or None)
        ifeval.require_punkt()
    except (RuntimeError, ImportError, DataError) as err:
        if isinstance(err, DataError) and cfg.ifeval_data:
            raise
        print(f"zephyr run: the IFEval stage is left out: {err} (install zephyr[eval]; name a local copy of "
              "IFEval's input_data.jsonl with --ifeval_data)", flush=True)
        return None
    prompts = Path(cfg.output_dir) / "ifeval" / "prompts.jsonl"
    prompts.parent.mkdir(parents=True, exist_ok=True)
    write_rows(ifeval.fixed_subset(rows, cfg.ifeval_prompts), prompts)
    return prompts


@contextlib.contextmanager
def fresh_process():
    """A spawned child process for the calls made in the block: `call(function, *args)` runs `function(*args)`
    there and returns its result (or raises its error). The IFEval stage answers there: in a process that has
    trained, the batched decoder's thread decodes about 1.6 times slower (benchmarks/README.md). The child
    starts at the first call and imports torch once for all of them."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield lambda function, *args: pool.submit(function, *args).result()


def run_ifeval(cfg: RunConfig, sft_cfg, dpo_cfg, final_dir: Path, prompts: Path | None = None) -> dict:
    """The same fixed IFEval subset for the base model, the SFT model and the final model, greedy; a model whose
    report is already in the run folder is not scored again (with --reuse)."""
    from .errors import ConfigError
    from .eval.cli import EvalConfig, run_ifeval as score

    prompts = prompts or prepare_ifeval(cfg)
    if prompts is None:
        raise ConfigError("IFEval cannot run here (see above)")
    prompts_sha256 = hashlib.sha256(prompts.read_bytes()).hexdigest()
    table = {}
    with fresh_process() as call:
        for name, model in ifeval_models(sft_cfg, dpo_cfg, final_dir).items():
            report_file, settings_file = prompts.parent / name / "report.json", prompts.parent / name / "settings.json"
            # what decides the answers; a report made with other prompts or settings is scored again, never reused
            settings = {"model": model, "prompts_sha256": prompts_sha256,
                        "max_new_tokens": cfg.ifeval_max_new_tokens, "chat_template": sft_cfg.chat_template,
                        "dtype": sft_cfg.dtype, "engine": cfg.ifeval_engine}
            if cfg.reuse and report_file.is_file() and settings_file.is_file() and \
                    json.loads(settings_file.read_text()) == settings:
                print(f"zephyr run: reusing IFEval of the {name} model ({report_file})", flush=True)
                report = json.loads(report_file.read_text())
            else:
                print(f"zephyr run: IFEval, {name} model ({model})", flush=True)
                settings_file.unlink(missing_ok=True)
                report = call(score, EvalConfig(
                    benchmark="ifeval", model=model, data=str(prompts), dtype=sft_cfg.dtype,
                    chat_template=sft_cfg.chat_template, temperature=0.0, max_new_tokens=cfg.ifeval_max_new_tokens,
                    batch_size=cfg.ifeval_batch_size, engine=cfg.ifeval_engine, output_dir=str(prompts.parent / name)))
                settings_file.write_text(json.dumps(settings, indent=1))
            table[name] = {k: report[k] for k in (*IFEVAL_NUMBERS, "prompts")}
    from .data.io import read_objects
    from .eval import ifeval

    rows = [row for _, row in read_objects(prompts)]
    passed = {name: ifeval.prompt_passes(str(prompts.parent / name / "answers.jsonl"), rows) for name in table}
    gains = {f"{name} - base": ifeval.paired_difference(passed["base"], passed[name]) for name in ("sft", "final")}
    gains["final - sft"] = ifeval.paired_difference(passed["sft"], passed["final"])
    return {"prompts": table["final"]["prompts"], "max_new_tokens": cfg.ifeval_max_new_tokens,
            "engine": cfg.ifeval_engine, "data": cfg.ifeval_data or ifeval.HUB_ID, "models": table,
            "prompt_loose_gains": gains}


def ifeval_section(result: dict) -> str:
    rows = [f"| {name} | " + " | ".join(f"{numbers[k]:.1f}" for k in IFEVAL_NUMBERS) + " |"
            for name, numbers in result["models"].items()]
    return "\n".join([
        "", "## IFEval", "",
        f"{result['prompts']} IFEval prompts (spread evenly over the 541 of {result['data']}), greedy, up to "
        f"{result['max_new_tokens']} new tokens; accuracy in %, checked by IFEval's own code.", "",
        "| Model | Prompt strict | Prompt loose | Instruction strict | Instruction loose |",
        "|:--|:--:|:--:|:--:|:--:|", *rows, "", *gains_lines(result.get("prompt_loose_gains"))])


def gains_lines(gains: dict | None) -> list[str]:
    if not gains:
        return []
    return ["Gains in prompt-level loose accuracy, paired over the same prompts, with 95% intervals (on a subset an "
            "interval that holds 0 is no evidence of a gain): " + "; ".join(
                f"{name} {g['points']:+.1f} [{g['ci95'][0]:+.1f}, {g['ci95'][1]:+.1f}]" for name, g in gains.items())
            + ".", ""]


def sample_chats(final_dir: Path, dpo_cfg, cfg: RunConfig) -> list[dict]:
    """One reply of the final model to each sample prompt, all generated in one batch."""
    from .sampling import Sampling, generate_batch
    from .models import ModelConfig, load_model, load_tokenizer

    model_cfg = ModelConfig(model=str(final_dir), dtype=dpo_cfg.dtype, chat_template=dpo_cfg.chat_template)
    tokenizer = load_tokenizer(model_cfg)
    model = load_model(model_cfg, tokenizer).eval()
    sampling = Sampling(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    conversations = [[{"role": "user", "content": prompt}] for prompt in cfg.sample_prompts]
    if not conversations:
        return []
    replies = generate_batch(model, tokenizer, conversations, sampling, model_cfg.chat_template)
    return [{"messages": messages + [{"role": "assistant", "content": reply}]}
            for messages, reply in zip(conversations, replies)]


def run(cfg: RunConfig) -> dict:
    from .data.io import write_rows
    from .dpo.train import run_dpo
    from .sft.stage import run_sft

    sft_cfg, dpo_cfg = stage_configs(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    summary: dict = {"output_dir": str(out)}
    sft_dir, dpo_dir = Path(sft_cfg.output_dir), Path(dpo_cfg.output_dir)
    final_dir = model_folder(dpo_dir, out / "final", dpo_cfg.use_lora)
    ifeval_prompts = prepare_ifeval(cfg) if "ifeval" in cfg.stages else None  # before training: fail early

    if "sft" in cfg.stages:
        if cfg.reuse and _done(sft_dir, "README.md"):
            print(f"zephyr run: reusing the finished SFT run in {sft_dir}", flush=True)
        else:
            timer.run("sft", run_sft, _continued(sft_cfg, cfg.reuse))
        if not (cfg.reuse and _done(Path(dpo_cfg.model), "tokenizer_config.json")):
            timer.run("sft merge", merged, sft_dir, Path(dpo_cfg.model), sft_cfg.dtype)
    if "dpo" in cfg.stages:
        if cfg.reuse and _done(dpo_dir, "README.md"):
            print(f"zephyr run: reusing the finished DPO run in {dpo_dir}", flush=True)
        else:
            dpo = timer.run("dpo", run_dpo, _continued(dpo_cfg, cfg.reuse))
            summary["dpo_train_loss"] = dpo.result.train_loss
        if not (cfg.reuse and _done(final_dir, "tokenizer_config.json")):
            timer.run("dpo merge", merged, dpo_dir, final_dir, dpo_cfg.dtype)
    if "eval" in cfg.stages:
        result = timer.run("eval", evaluate, dpo_cfg, final_dir, cfg.eval_batch_size)
        (out / "eval.json").write_text(json.dumps(result, indent=1))
        summary["eval"] = result
    if ifeval_prompts is not None:
        result = timer.run("ifeval", run_ifeval, cfg, sft_cfg, dpo_cfg, final_dir, ifeval_prompts)
        (out / "ifeval.json").write_text(json.dumps(result, indent=1))
        summary["ifeval"] = result
    if "card" in cfg.stages and (out / "eval.json").is_file():
        card = final_dir / "README.md"
        text = card.read_text() if card.is_file() else ""
        marker = "\n## Evaluation on held-out preference pairs"
        text = text.split(marker)[0].rstrip("\n") + "\n" + eval_section(json.loads((out / "eval.json").read_text()))
        if (out / "ifeval.json").is_file():
            text += ifeval_section(json.loads((out / "ifeval.json").read_text()))
        card.write_text(text)
        summary["card"] = str(card)
    if "chat" in cfg.stages:
        chats = timer.run("chat", sample_chats, final_dir, dpo_cfg, cfg)
        write_rows(chats, out / "samples.jsonl")
        summary["chats"] = chats
    summary["seconds"], summary["cpu_seconds"] = timer.seconds, timer.cpu_seconds
    (out / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "chats"}, indent=1))
    print_summary(summary, final_dir)
    return summary


def print_summary(summary: dict, final_dir: Path) -> None:
    lines = ["", "=== zephyr run: summary ==="]
    total = sum(summary["seconds"].values())
    lines.append("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in summary["seconds"].items()) + f" (total {total:.0f}s;"
                 f" CPU time {sum(summary['cpu_seconds'].values()):.0f}s)")
    if "eval" in summary:
        e = summary["eval"]
        lines.append(f"held-out pairs ({e['pairs']}): preference accuracy SFT {e['sft']['preference_accuracy']:.3f}"
                     f" -> DPO {e['dpo']['preference_accuracy']:.3f}; DPO rewards/accuracies vs SFT "
                     f"{e['dpo']['rewards/accuracies']:.3f}, margin {e['dpo']['rewards/margins']:.3f}")
    if "ifeval" in summary:
        models = summary["ifeval"]["models"]
        lines.append(f"IFEval ({summary['ifeval']['prompts']} prompts), prompt-level loose: "
                     + " -> ".join(f"{name} {numbers['prompt_level_loose']:.1f}" for name, numbers in models.items()))
    for chat in summary.get("chats", []):
        user, reply = chat["messages"][0]["content"], chat["messages"][-1]["content"]
        lines.append(f"  user: {user}\n  assistant: {reply}")
    lines.append(f"model: {final_dir}  (try: zephyr chat --model {final_dir})")
    if "card" in summary:
        lines.append(f"card: {summary['card']}")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    first = parse_args(RunConfig, argv, prog="zephyr run", positional="recipe")
    extra = Path(first.recipe) / "run.yaml"
    cfg = parse_args(RunConfig, ["--config", str(extra), *argv], prog="zephyr run", positional="recipe") \
        if extra.is_file() else first
    run(cfg)
    return 0
