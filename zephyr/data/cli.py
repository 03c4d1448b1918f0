"""`zephyr data <subcommand>`: prepare data files outside training, printing what every rule removed.

  zephyr data binarize IN OUT [--seed 42]                raw UltraFeedback -> preference pairs (binarize.py)
  zephyr data filter IN OUT                              UltraChat clean-up (ultrachat_filter.py)
  zephyr data decontaminate IN OUT --eval FILE [FILE ...] [--ngram 8]
  zephyr data mix --config recipe.yaml OUT_DIR           mix + split as a stage would -> train/test.jsonl

IN is a local file (.jsonl/.json/.parquet/.csv) or a hub id (`id@split`, default split train); OUT's extension
picks JSONL, JSON or Parquet. Options are dataclass fields (`--help` lists them). `zephyr.config.parse_args`
takes one positional and one value per option, so this module walks the arguments itself (two positionals,
`--eval` with several files) and hands the values to `zephyr.config.from_dict` for the same type checks.
`mix` reads only the data fields of a recipe, so a full SFT/DPO recipe can be passed as it is.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from ..config import field, format_help, from_dict, load_yaml
from ..errors import ConfigError, DataError
from . import schemas
from .binarize import binarize_row
from .config import DataConfig
from .decontaminate import DEFAULT_NGRAM, EvalIndex
from .io import Where, progress, write_rows
from .mixer import (Report, Source, accounted, load_chat_splits, load_preference_splits, parse_sources,
                    split_streams)
from .ultrachat_filter import filter_dialogue


@dataclasses.dataclass
class BinarizeArgs:
    """Binarize raw UltraFeedback rows (instruction, completions) into chosen/rejected pairs."""

    input: str = field("", help="raw UltraFeedback file, or hub id[@split]")
    output: str = field("", help="where to write the pairs (.jsonl, .json or .parquet)")
    seed: int = field(42, help="seed of the per-row random choice of the rejected completion")
    skip_invalid: bool = field(False, help="skip and count malformed rows instead of stopping")


@dataclasses.dataclass
class FilterArgs:
    """Clean dialogues as for raw UltraChat: truecase, drop 'as an AI' replies, empty and one-sided dialogues."""

    input: str = field("", help="file of rows with a `messages` list, or hub id[@split]")
    output: str = field("", help="where to write the kept rows (.jsonl, .json or .parquet)")
    skip_invalid: bool = field(False, help="skip and count malformed rows instead of stopping")


@dataclasses.dataclass
class DecontaminateArgs:
    """Drop rows whose prompt shares a word n-gram with an eval prompt set."""

    input: str = field("", help="chat or preference file, or hub id[@split]")
    output: str = field("", help="where to write the kept rows, unchanged (.jsonl, .json or .parquet)")
    eval: list[str] = field([], help="eval prompt files: MT-Bench question.jsonl, AlpacaEval .json, IFEval .jsonl")
    ngram: int = field(DEFAULT_NGRAM, help="n-gram length in words")
    skip_invalid: bool = field(False, help="skip and count malformed rows instead of stopping")


@dataclasses.dataclass
class MixArgs(DataConfig):
    """Mix and split the recipe's datasets exactly as its training stage would, and write them out."""

    output_dir: str = field("", help="folder for train.jsonl, test.jsonl and report.json")
    kind: str = field("auto", help="chat (conversations), preference (pairs), or auto (from the first row)")


def parse(cls: type, argv: list[str], positionals: list[str], prog: str, recipe_data_only: bool = False):
    """`POSITIONAL... [--config recipe.yaml] [--field value | --field=value | --flag | --list a b c]` -> cls."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    recipe: dict[str, Any] = {}
    given: dict[str, Any] = {}
    bare: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            bare.append(arg)
            continue
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key == "config":
            if not eq:
                if i >= len(argv):
                    raise ConfigError("--config needs a YAML path")
                value, i = argv[i], i + 1
            recipe.update(_recipe(load_yaml(value), names, value) if recipe_data_only else load_yaml(value))
            continue
        if key not in hints or key in positionals:
            close = difflib.get_close_matches(key, [n for n in names if n not in positionals], n=1, cutoff=0.5)
            raise ConfigError(f"{prog}: unknown option --{key}" + (f"; did you mean --{close[0]}?" if close else ""))
        inner = _without_none(hints[key])
        if eq:
            given[key] = value
        elif inner is bool:
            if i < len(argv) and argv[i].lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                given[key], i = argv[i], i + 1
            else:
                given[key] = "true"
        elif typing.get_origin(inner) is list:  # takes every value up to the next --option
            values = []
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            if not values:
                raise ConfigError(f"--{key} needs at least one value")
            given[key] = values
        else:
            if i >= len(argv):
                raise ConfigError(f"--{key} needs a value")
            given[key], i = argv[i], i + 1
    if len(bare) != len(positionals):
        wanted = " ".join(p.upper() for p in positionals)
        raise ConfigError(f"usage: {prog} {wanted} [--option value ...] (got {len(bare)} of {len(positionals)} "
                          f"positional arguments: {' '.join(bare) or 'none'}); see {prog} --help")
    return from_dict(cls, {**recipe, **given, **dict(zip(positionals, bare))}, where=prog)


def _without_none(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def _recipe(values: dict, names: list[str], path: str) -> dict:
    """Keep a recipe's data fields; the trainer fields belong to other stages. A near-miss is a typo: say so."""
    kept = {}
    for key, value in values.items():
        if key in names:
            kept[key] = value
            continue
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.85)
        if close:
            raise ConfigError(f"{path}: unknown field '{key}'; did you mean '{close[0]}'?")
    return kept


def _source_rows(spec: str, desc: str) -> Iterator[tuple[Where, Any]]:
    location, split = spec, None
    if not Path(spec).exists() and "@" in spec:
        location, split = spec.rsplit("@", 1)
    source = Source(spec, location, 1.0, [split] if split else None)
    for _, stream in split_streams(source, DataConfig(dataset_splits=["train"])):
        yield from progress(stream, desc=desc)


def _each_row(spec: str, desc: str, skip_invalid: bool, counts: Counter, report: Report,
              handle: Callable[[Any, Where, Counter], Any]) -> Iterator[Any]:
    for item in accounted(_source_rows(spec, desc), handle, counts, report, skip_invalid):
        counts["written"] += 1
        yield item


def binarize(args: BinarizeArgs) -> Report:
    report = Report()
    counts = report.setdefault(args.input, Counter())

    def handle(row: Any, where: Where, counts: Counter) -> dict | None:
        if schemas.detect(row, where, "instruction") != schemas.RAW_ULTRAFEEDBACK:
            raise where.error("not a raw UltraFeedback row (needs 'instruction' and 'completions')", "completions")
        return binarize_row(row, where, args.seed, counts)

    write_rows(_each_row(args.input, "binarize", args.skip_invalid, counts, report, handle), args.output)
    return report


def filter_chat(args: FilterArgs) -> Report:
    report = Report()
    counts = report.setdefault(args.input, Counter())

    def handle(row: Any, where: Where, counts: Counter) -> dict | None:
        messages = filter_dialogue(schemas.chat_messages(row, where), counts)
        if messages is None:
            return None
        schemas.check_conversation(messages, where)
        if schemas.detect(row, where) != "messages":
            return {"messages": messages}
        out = dict(row)
        first_user = next((m["content"] for m in row["messages"] if m.get("role") == "user"), None)
        if isinstance(row.get("prompt"), str) and row["prompt"] == first_user:  # keep ultrachat's `prompt` in step
            out["prompt"] = next(m["content"] for m in messages if m["role"] == "user")
        out["messages"] = messages
        return out

    write_rows(_each_row(args.input, "filter", args.skip_invalid, counts, report, handle), args.output)
    return report


def decontaminate(args: DecontaminateArgs) -> Report:
    if not args.eval:
        raise ConfigError("decontaminate needs --eval FILE [FILE ...] (MT-Bench, AlpacaEval or IFEval prompts)")
    index, described = EvalIndex.from_files(args.eval, args.ngram)
    report = Report()
    report.notes.append(f"{index.prompts} eval prompts, {args.ngram}-grams: "
                        + ", ".join(f"{Path(p).name} = {d}" for p, d in described.items()))
    counts = report.setdefault(args.input, Counter())

    def handle(row: Any, where: Where, counts: Counter) -> Any:
        if index.contaminated(schemas.user_turns(row, where)):
            counts["decontaminated"] += 1
            return None
        return row

    write_rows(_each_row(args.input, "decontaminate", args.skip_invalid, counts, report, handle), args.output)
    return report


def mix(args: MixArgs) -> Report:
    if args.kind not in ("auto", "chat", "preference"):
        raise ConfigError(f"--kind must be auto, chat or preference, got {args.kind!r}")
    kind = args.kind if args.kind != "auto" else _guess_kind(args)
    splits = (load_chat_splits if kind == "chat" else load_preference_splits)(args)
    out = Path(args.output_dir)
    write_rows(({"messages": c} for c in splits.train) if kind == "chat" else splits.train, out / "train.jsonl")
    write_rows(({"messages": c} for c in splits.test) if kind == "chat" else splits.test, out / "test.jsonl")
    (out / "report.json").write_text(json.dumps({"kind": kind, "sources": splits.report,
                                                 "notes": splits.report.notes}, indent=1))
    splits.report.notes.append(f"{kind} data: {len(splits.train)} train / {len(splits.test)} test rows in {out}")
    return splits.report


def _guess_kind(args: MixArgs) -> str:
    """chat if the first readable row of the first source has only `messages`, else preference."""
    source = parse_sources(args.dataset_mixer)[0]
    for _, stream in split_streams(source, args):
        for where, row in stream:
            if isinstance(row, dict):
                return "chat" if schemas.detect(row, where) == "messages" else "preference"
    raise DataError("cannot tell chat from preference data (no rows); pass --kind", source.location)


SUBCOMMANDS: dict[str, tuple[type, list[str], Callable[[Any], Report]]] = {
    "binarize": (BinarizeArgs, ["input", "output"], binarize),
    "filter": (FilterArgs, ["input", "output"], filter_chat),
    "decontaminate": (DecontaminateArgs, ["input", "output"], decontaminate),
    "mix": (MixArgs, ["output_dir"], mix),
}


def usage() -> str:
    lines = ["usage: zephyr data <subcommand> ... (zephyr data <subcommand> --help for its options)", ""]
    lines += [f"  {name:<14}{' '.join(p.upper() for p in pos):<16}{(cls.__doc__ or '').splitlines()[0]}"
              for name, (cls, pos, _) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        close = difflib.get_close_matches(name, SUBCOMMANDS, n=1)
        print(f"zephyr data: unknown subcommand '{name}'" + (f"; did you mean '{close[0]}'?" if close else "")
              + "\n\n" + usage(), file=sys.stderr)
        return 2
    cls, positionals, run = SUBCOMMANDS[name]
    prog = f"zephyr data {name}"
    if "-h" in rest or "--help" in rest:
        text = format_help(cls, prog)
        text = text.replace("[--config RECIPE.yaml]", " ".join(p.upper() for p in positionals)
                            + (" [--config RECIPE.yaml]" if cls is MixArgs else ""), 1)
        print(text)
        return 0
    args = parse(cls, rest, positionals, prog, recipe_data_only=cls is MixArgs)
    report = run(args)
    print(report.table())
    return 0
