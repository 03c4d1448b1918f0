"""`zephyr data <subcommand>`: prepare data files outside training, printing what every rule removed.

  zephyr data binarize IN OUT [--rule overall_score]     raw UltraFeedback -> preference pairs (binarize.py)
  zephyr data filter IN OUT                              UltraChat clean-up (ultrachat_filter.py)
  zephyr data decontaminate IN OUT --eval FILE [FILE ...] [--ngram 8]
  zephyr data mix OUT_DIR --config recipe.yaml           mix + split as a stage would -> train/test.jsonl

IN is a local file (.jsonl/.json/.parquet/.csv) or a hub id (`id@split`, default split train); OUT's extension
picks JSONL, JSON or Parquet. Options are dataclass fields (`--help` lists them), parsed by `zephyr.config`.
`mix` reads only the data fields of a recipe, so a full SFT/DPO recipe can be passed as it is.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from ..cli import dispatch
from ..config import field, parse_args
from ..errors import ConfigError, DataError
from . import schemas
from .binarize import DEFAULT_RULE, RULES, binarized_record
from .config import DataConfig
from .decontaminate import DEFAULT_NGRAM, EvalIndex
from .io import Where, check_output_file, check_output_folder, disk_full_is_reported, progress, write_rows
from .mixer import (Report, Source, accounted, load_chat_splits, load_preference_splits, parse_sources,
                    split_streams)
from .ultrachat_filter import filter_dialogue


@dataclasses.dataclass
class BinarizeArgs:
    """Binarize raw UltraFeedback rows (instruction, completions) into chosen/rejected pairs."""

    input: str = field(help="raw UltraFeedback file, or hub id[@split]")
    output: str = field(help="where to write the pairs (.jsonl, .json or .parquet)")
    seed: int = field(42, help="seed of the per-row random choice of the rejected completion")
    rule: str = field(DEFAULT_RULE, help="overall_score (HuggingFaceH4/ultrafeedback_binarized, what zephyr-7b-beta "
                                         "trained on; also the data mixer's default for raw rows) or mean_rating "
                                         "(Argilla's cleaned release); see zephyr/data/binarize.py")
    skip_invalid: bool = field(False, help="skip and count malformed rows instead of stopping")

    def __post_init__(self):
        if self.rule not in RULES:
            raise ConfigError(f"--rule: {self.rule!r} is not one of {', '.join(RULES)}")
        check_output_file(self.output, "output")


@dataclasses.dataclass
class FilterArgs:
    """Clean dialogues as for raw UltraChat: truecase, drop 'as an AI' replies, empty and one-sided dialogues."""

    input: str = field(help="file of rows with a `messages` list, or hub id[@split]")
    output: str = field(help="where to write the kept rows (.jsonl, .json or .parquet)")
    skip_invalid: bool = field(False, help="skip and count malformed rows instead of stopping")

    def __post_init__(self):
        check_output_file(self.output, "output")


@dataclasses.dataclass
class DecontaminateArgs:
    """Drop rows whose prompt shares a word n-gram with an eval prompt set."""

    input: str = field(help="chat or preference file, or hub id[@split]")
    output: str = field(help="where to write the kept rows, unchanged (.jsonl, .json or .parquet)")
    eval: list[str] = field([], help="eval prompt files: MT-Bench question.jsonl, AlpacaEval .json, IFEval .jsonl")
    ngram: int = field(DEFAULT_NGRAM, help="n-gram length in words")
    skip_invalid: bool = field(False, help="skip and count malformed rows instead of stopping")

    def __post_init__(self):
        if not self.eval:
            raise ConfigError("decontaminate needs --eval FILE [FILE ...] (MT-Bench, AlpacaEval or IFEval prompts)")
        if self.ngram < 1:
            raise ConfigError(f"--ngram: an n-gram has at least 1 word, got {self.ngram}")
        check_output_file(self.output, "output")


@dataclasses.dataclass
class MixArgs(DataConfig):
    """Mix and split the recipe's datasets exactly as its training stage would, and write them out."""

    output_dir: str = field(help="folder for train.jsonl, test.jsonl and report.json", kw_only=True)
    kind: str = field("auto", help="chat (conversations), preference (pairs), or auto (from the first row)")

    def __post_init__(self):
        super().__post_init__()
        if self.kind not in ("auto", "chat", "preference"):
            raise ConfigError(f"--kind: must be auto, chat or preference, got {self.kind!r}")
        check_output_folder(self.output_dir, "output_dir")


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
        return binarized_record(row, where, args.seed, counts, args.rule)

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
    kind = args.kind if args.kind != "auto" else _guess_kind(args)
    splits = (load_chat_splits if kind == "chat" else load_preference_splits)(args)
    out = Path(args.output_dir)
    write_rows(({"messages": c} for c in splits.train) if kind == "chat" else splits.train, out / "train.jsonl")
    write_rows(({"messages": c} for c in splits.test) if kind == "chat" else splits.test, out / "test.jsonl")
    with disk_full_is_reported(out / "report.json", "train.jsonl and test.jsonl are complete"):
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


def subcommand(name: str, cls: type, positional: list[str], run: Callable[[Any], Report]) -> tuple[Callable, str]:
    """A dispatch table entry: parse `cls` (mix: only the recipe's data fields), run, print the report."""

    def main(argv: list[str]) -> int:
        args = parse_args(cls, argv, prog=f"zephyr data {name}", positional=positional, recipe_subset=cls is MixArgs)
        print(run(args).table())
        return 0

    meaning = f"{' '.join(p.upper() for p in positional):<16}{(cls.__doc__ or '').splitlines()[0]}"
    return main, meaning


SUBCOMMANDS = {
    "binarize": subcommand("binarize", BinarizeArgs, ["input", "output"], binarize),
    "filter": subcommand("filter", FilterArgs, ["input", "output"], filter_chat),
    "decontaminate": subcommand("decontaminate", DecontaminateArgs, ["input", "output"], decontaminate),
    "mix": subcommand("mix", MixArgs, ["output_dir"], mix),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(SUBCOMMANDS, argv, prog="zephyr data")
