"""AlpacaEval 1 and 2 (Li et al. 2023; Dubois et al. 2024) as the alpaca-eval package runs them.

805 instructions; a judge compares the model's output with a reference model's output, using the package's own
judge config and prompt (`alpaca_package`):
- AlpacaEval 2 (`weighted_alpaca_eval_gpt4_turbo`, the default): reference gpt4_1106_preview ("gpt4_turbo");
  the preference is the judge's probability of the token naming our output (from its top log-probabilities);
  headline metric the length-controlled win rate.
- AlpacaEval 1 (`alpaca_eval_gpt4`): reference text_davinci_003; GPT-4 ranks the two outputs.
Files written as AlpacaEval writes them: model_outputs.json, annotations.json, leaderboard.csv (one row).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ..data.io import read_hub, read_objects
from ..errors import ConfigError, DataError
from . import alpaca_package
from .alpaca_package import AE1, AE2

HUB_ID = "tatsu-lab/alpaca_eval"
# alpaca-eval's generation config for zephyr-7b-beta (models_configs/zephyr-7b-beta): the settings of the card's run
ZEPHYR_CONFIG = "zephyr-7b-beta"
ROW_FIELDS = ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate",
              "avg_length", "length_controlled_winrate", "lc_standard_error")


def _text(where, row: dict, name: str, required: bool = True) -> None:
    value = row.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise where.error(f"must be a string, got {type(value).__name__}", name)


def load_reference(path: str | None, annotator: str) -> list[dict]:
    """The instructions with the reference outputs (AlpacaEval's model_outputs layout: instruction, output,
    generator, dataset), from a local json/jsonl file or the hub config of the annotator's version."""
    source = read_objects(path) if path else read_hub(HUB_ID, "eval", alpaca_package.REFERENCE_CONFIG[annotator])
    rows, seen = [], {}
    for where, row in source:
        _text(where, row, "instruction")
        _text(where, row, "output")
        _text(where, row, "generator", required=False)
        if not row["instruction"].strip():
            raise where.error("is empty", "instruction")
        if row["instruction"] in seen:  # the package pairs outputs by instruction text
            raise where.error(f"repeats the instruction of row {seen[row['instruction']]}", "instruction")
        seen[row["instruction"]] = where.number
        rows.append({"instruction": row["instruction"], "output": row["output"],
                     "generator": row.get("generator") or "reference", "dataset": row.get("dataset")})
    if not rows:
        raise DataError("no rows", path or HUB_ID)
    return rows


def _preference(where, value):
    """A stored preference: 1..2 (2 = output_2 better), 0 (a draw, older files), None/NaN (unparsable)."""
    if isinstance(value, str):  # some published files store numbers as text
        try:
            value = float(value)
        except ValueError:
            raise where.error(f"must be a number or null, got {value!r}", "preference") from None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(f"must be a number or null, got {type(value).__name__}", "preference")
    if math.isnan(value):
        return None
    if not (value == 0 or 1 <= value <= 2):
        raise where.error(f"must be between 1 and 2 (or 0 for a draw), got {value}", "preference")
    return float(value)


def load_annotations(path: str) -> list[dict]:
    """An AlpacaEval annotations.json (either version), validated: the fields the metrics read, one annotator,
    one model and one reference generator."""
    rows = []
    for where, row in read_objects(path):
        for name in ("instruction", "output_1", "output_2", "generator_1", "generator_2", "annotator"):
            _text(where, row, name)
        if "preference" not in row:
            raise where.error("is missing", "preference")
        for name in ("generator_1", "generator_2", "annotator"):
            if rows and row[name] != rows[0][name]:
                raise where.error(f"is {row[name]!r} but the first row's is {rows[0][name]!r}; one file holds one "
                                  "model's annotations by one judge", name)
        rows.append({**row, "preference": _preference(where, row["preference"])})
    if not rows:
        raise DataError("no annotations in the file", path)
    return rows


def generation_defaults() -> dict:
    """max_new_tokens, temperature and top_p of alpaca-eval's zephyr-7b-beta generation config."""
    ae = alpaca_package.package()
    path = Path(ae.constants.MODELS_CONFIG_DIR) / ZEPHYR_CONFIG / "configs.yaml"
    (config,) = ae.utils.load_configs(path).values()
    kwargs = config["completions_kwargs"]
    return {"max_new_tokens": int(kwargs["max_new_tokens"]), "temperature": float(kwargs["temperature"]),
            "top_p": float(kwargs["top_p"])}


def leaderboard_row(annotations: list[dict], df_gamed: str = "") -> dict:
    """The leaderboard row alpaca-eval computes from these annotations; the length-controlled win rate for
    AlpacaEval 2 (None with the reason in `length_controlled_error` when df_gamed.csv cannot be had)."""
    annotator = annotations[0]["annotator"]
    unparsable = sum(a["preference"] is None or a["preference"] != a["preference"] for a in annotations)
    row = {"annotator": annotator, "generator": annotations[0]["generator_2"],
           "reference": annotations[0]["generator_1"]}
    if annotator == AE2:
        try:
            row.update(alpaca_package.leaderboard_row(annotations, True, df_gamed or None))
        except Exception as err:  # offline hub, a bad local copy: the raw row is still right
            row.update(alpaca_package.leaderboard_row(annotations, False))
            row.update(length_controlled_winrate=None, lc_standard_error=None,
                       length_controlled_error=f"{type(err).__name__}: {err}; the length-controlled win rate needs "
                                               "df_gamed.csv from the hub dataset tatsu-lab/alpaca_eval (or a local "
                                               "copy: --df_gamed FILE)")
    else:
        row.update(alpaca_package.leaderboard_row(annotations, False))
    row["n_unparsable"] = unparsable  # dropped from every figure, as alpaca-eval does
    return row


def write_leaderboard(row: dict, path: Path) -> None:
    """leaderboard.csv as alpaca-eval writes it: one row indexed by the model's name, win_rate first."""
    import pandas as pd

    values = {key: row[key] for key in ("win_rate", "standard_error") if key in row}
    values.update({key: row[key] for key in ROW_FIELDS if key in row and key not in values})
    pd.DataFrame.from_dict({row["generator"]: values}, orient="index").to_csv(path)


def write_json_records(rows: list[dict], path: Path) -> None:
    import pandas as pd

    pd.DataFrame.from_records(rows).to_json(path, orient="records", indent=2)


def recompute(config) -> dict:
    """`--annotations FILE`: the leaderboard row of an existing annotations file, without a model or a judge."""
    annotations = load_annotations(config.annotations)
    row = leaderboard_row(annotations, config.df_gamed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_leaderboard(row, out / "leaderboard.csv")
    return {"benchmark": "alpaca_eval", "annotations": config.annotations, **row}


def check_settings(config) -> None:
    """Settings errors before anything loads."""
    alpaca_package.check_annotator(config.annotator)
    if config.df_gamed and not Path(config.df_gamed).is_file():
        raise ConfigError(f"--df_gamed: file not found: {config.df_gamed}")
    if config.annotator == AE2 and config.judge and not config.annotations:
        raise ConfigError("--judge: AlpacaEval 2 reads the judge's token log-probabilities, which a local --judge "
                          "does not return; serve the judge with `zephyr serve JUDGE` and pass --judge_url")


def with_defaults(config, sampling_defaults):
    """AlpacaEval's generation settings and judge model where the command line left zephyr's defaults."""
    changes = {name: value for name, value in generation_defaults().items()
               if getattr(config, name) == sampling_defaults[name]}
    if config.judge_model == sampling_defaults["judge_model"]:
        changes["judge_model"] = alpaca_package.judge_settings(config.annotator)["completions_kwargs"]["model_name"]
    return dataclasses.replace(config, **changes)


def run(config, make_generator, make_judge) -> dict:
    """Generate, judge with the package's annotator, write AlpacaEval's files and the leaderboard row."""
    check_settings(config)
    reference = load_reference(config.data or None, config.annotator)[:config.limit or None]
    judge = make_judge(config)
    generate = make_generator(config)  # the model loads only once the inputs and settings are known to be good
    name = config.generator or Path(config.model).name or config.model
    outputs = generate([[{"role": "user", "content": r["instruction"]}] for r in reference])
    model_outputs = [{"instruction": r["instruction"], "output": o, "generator": name, "dataset": r["dataset"]}
                     for r, o in zip(reference, outputs)]
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_records(model_outputs, out / "model_outputs.json")
    annotations = alpaca_package.annotate(judge, reference, model_outputs, config.annotator)
    write_json_records(annotations, out / "annotations.json")
    row = leaderboard_row(load_annotations(str(out / "annotations.json")), config.df_gamed)
    write_leaderboard(row, out / "leaderboard.csv")
    return {"benchmark": "alpaca_eval", "model": config.model, "judge": getattr(judge, "name", None), **row}
