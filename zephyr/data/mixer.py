"""Mix several sources into train/test splits of normalised conversations or preference pairs.

For each source (a `dataset_mixer` entry):
  1. read the requested splits (`dataset_splits`, or the one named by `source@split`); a split whose name
     contains "test" goes to evaluation only - it is never folded into training;
  2. normalise every row (schemas.py; UltraChat filter and UltraFeedback binarization when they apply);
     a malformed row raises DataError, or with `skip_invalid` is skipped and counted;
  3. if the source has no test split, hold out `test_split_size` of its shuffled training rows;
  4. drop training rows whose user turns equal those of any test row (of any source), and (with
     `decontaminate`) rows whose prompt overlaps an eval benchmark;
  5. keep `fraction` of the remaining training rows (a seeded random subset; test rows are kept whole).
Then all sources are concatenated, shuffled with `seed`, and capped by max_train/eval_samples.

Sources: a local file (its rows form the split named after '@', else "train"), a local folder (files named
after the splits: `train_sft.jsonl`, `test_sft-00000-of-00001.parquet`, also under `data/`), or a hub id read
with `datasets.load_dataset(id, config, split=..., revision=...)`; hub splits that do not exist are skipped.
A mixer value is a fraction, or a dict {fraction: 0.5, splits: [...], config: name, revision: ref}.

Every row read is accounted for in the report: per source,
read = invalid_skipped + dropped_by_rules + duplicate_of_test + decontaminated + not_sampled + train + test.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ConfigError, DataError
from . import schemas
from .binarize import binarize_row
from .config import DataConfig
from .decontaminate import EvalIndex
from .io import FORMATS, MissingSplit, Where, progress, read_hub, read_rows
from .ultrachat_filter import filter_dialogue

MAX_EXAMPLES = 5  # skipped-row messages kept for the report
FIRST = ["read", "invalid_skipped", "dropped_by_rules"]  # report rows: these first, rule details, then results
LAST = ["held_out", "duplicate_of_test", "decontaminated", "not_sampled", "train", "test", "written"]


class Report(dict):
    """source -> {count name: int}; `str(report)` is a short table, `report.total()` the column sums."""

    def __init__(self):
        super().__init__()
        self.skipped_examples: list[str] = []
        self.notes: list[str] = []

    def total(self) -> Counter:
        total: Counter = Counter()
        for counts in self.values():
            total.update(counts)
        return total

    def table(self) -> str:
        names = list(self)
        columns = names + (["total"] if len(names) > 1 else [])
        values = {name: self[name] for name in names}
        if len(names) > 1:
            values["total"] = self.total()
        seen = list(dict.fromkeys(key for counts in values.values() for key in counts))
        keys = ([k for k in FIRST if k in seen] + [k for k in seen if k not in FIRST + LAST]
                + [k for k in LAST if k in seen])
        short = {name: _short(name) for name in columns}
        width = max([len(k) for k in keys] + [5])
        col_widths = {name: max(len(short[name]), 7) for name in columns}
        lines = [" " * width + "  " + "  ".join(short[n].rjust(col_widths[n]) for n in columns)]
        for key in keys:
            cells = "  ".join(str(values[n].get(key, 0)).rjust(col_widths[n]) for n in columns)
            lines.append(key.ljust(width) + "  " + cells)
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"skipped: {example}" for example in self.skipped_examples]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _short(name: str) -> str:
    """A report column title: a local file shows its name (+@split), a hub id stays whole, both cut to 30."""
    location, at, split = name.rpartition("@") if "@" in name else (name, "", "")
    if Path(location).exists():
        name = Path(location).name + at + split
    return name if len(name) <= 30 else "..." + name[-27:]


@dataclass
class Splits:
    train: list
    test: list
    report: Report


@dataclass
class Source:
    name: str  # the mixer key, used in the report
    location: str  # local path or hub id
    fraction: float
    splits: list[str] | None = None  # None: DataConfig.dataset_splits
    config: str | None = None
    revision: str | None = None


def is_test_split(split: str) -> bool:
    return "test" in split.lower()


def parse_sources(mixer: dict[str, Any]) -> list[Source]:
    if not mixer:
        raise ConfigError("dataset_mixer is empty: name at least one source (file, folder or hub id) -> fraction")
    sources = []
    for name, value in mixer.items():
        location, split = str(name), None
        if not Path(location).exists() and "@" in location:
            location, split = location.rsplit("@", 1)
        options = value if isinstance(value, dict) else {"fraction": value}
        unknown = set(options) - {"fraction", "splits", "config", "revision"}
        if unknown:
            raise ConfigError(f"dataset_mixer['{name}']: unknown key(s) {', '.join(sorted(unknown))}; "
                              "use fraction, splits, config, revision")
        fraction = options.get("fraction", 1.0)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ConfigError(f"dataset_mixer['{name}']: fraction must be a number from 0 to 1, got {fraction!r}")
        splits = options.get("splits")
        if isinstance(splits, str):
            splits = [splits]
        if split is not None:
            splits = [split]
        sources.append(Source(str(name), location, float(fraction), splits, options.get("config"),
                              options.get("revision")))
    return sources


def _local_split_files(folder: Path, split: str) -> list[Path]:
    found = []
    for where in (folder, folder / "data"):
        if where.is_dir():
            found += [p for p in sorted(where.iterdir()) if p.suffix.lower() in FORMATS
                      and (p.name.split(".")[0] == split or p.name.startswith(f"{split}-"))]
    return found


def split_streams(source: Source, cfg: DataConfig) -> Iterator[tuple[str, Iterator[tuple[Where, Any]]]]:
    """(split name, row stream) for every split of a source that exists."""
    explicit = source.splits is not None
    splits = source.splits if explicit else list(cfg.dataset_splits)
    path = Path(source.location)
    if path.is_file() or (not path.exists() and path.suffix.lower() in FORMATS):
        if len(splits) > 1 and explicit:
            raise ConfigError(f"dataset_mixer['{source.name}']: a single file is one split; name one with @split")
        yield (splits[0] if explicit else "train"), read_rows(path)
        return
    found_any = False
    for split in splits:
        if path.is_dir():
            files = _local_split_files(path, split)
            if not files:
                if explicit:
                    raise DataError(f"no file for split '{split}' (expected {split}.jsonl/.json/.parquet/.csv)",
                                    str(path))
                continue
            found_any = True
            yield split, (record for file in files for record in read_rows(file))
        else:
            stream = read_hub(source.location, split, source.config, source.revision)
            try:
                first = next(stream)
            except MissingSplit:
                if explicit:
                    raise DataError(f"the dataset has no split '{split}'", source.location) from None
                continue
            except StopIteration:
                first = None
            found_any = True
            yield split, _prepend(first, stream)
    if not found_any and path.is_dir():
        names = " or ".join(f"{split}.jsonl/.json/.parquet/.csv" for split in splits)
        raise DataError(f"a folder without a data file for the splits {', '.join(splits)} (expected {names}, also "
                        "under data/); to read one file, name the file", source.location)
    if not found_any:
        raise DataError(f"none of the splits {', '.join(splits)} exist (set dataset_splits or use source@split)",
                        source.location)


def _prepend(first, stream):
    if first is not None:
        yield first
    yield from stream


def accounted(stream: Iterator[tuple[Where, Any]], handle: Callable, counts: Counter, report: Report,
              skip_invalid: bool) -> Iterator[Any]:
    """`handle(row, where, counts)` over a stream, counting every row: read, invalid_skipped, dropped_by_rules.

    A malformed row raises its DataError unless `skip_invalid`; a row a rule removes (handle returns None or
    raises schemas.Dropped) is counted, never silently lost.
    """
    for where, row in stream:
        counts["read"] += 1
        try:
            if isinstance(row, DataError):
                raise row
            item = handle(row, where, counts)
        except schemas.Dropped as dropped:
            counts[dropped.reason] += 1
            item = None
        except DataError as err:
            if not skip_invalid:
                raise
            counts["invalid_skipped"] += 1
            if len(report.skipped_examples) < MAX_EXAMPLES:
                report.skipped_examples.append(str(err))
            continue
        if item is None:
            counts["dropped_by_rules"] += 1
        else:
            yield item


def _normalise_all(source: Source, cfg: DataConfig, normalise: Callable, counts: Counter, report: Report
                   ) -> tuple[list, list, bool]:
    train, test, has_test = [], [], False
    for split, stream in split_streams(source, cfg):
        target = test if is_test_split(split) else train
        has_test |= is_test_split(split)
        rows = progress(stream, desc=f"{Path(source.name).name}@{split}")
        target += accounted(rows, normalise, counts, report, cfg.skip_invalid)
    return train, test, has_test


def mix(cfg: DataConfig, normalise: Callable, user_texts: Callable[[Any], list[str]]) -> Splits:
    """The mixing procedure in the module docstring; `normalise(row, where, counts)` -> item or None."""
    report = Report()
    index = None
    if cfg.decontaminate:
        index, described = EvalIndex.from_files(cfg.decontaminate, cfg.decontaminate_ngram)
        report.notes.append(f"decontaminated against {index.prompts} eval prompts ({cfg.decontaminate_ngram}-grams): "
                            + ", ".join(f"{Path(p).name} = {d}" for p, d in described.items()))
    loaded = []
    for source in parse_sources(cfg.dataset_mixer):
        counts = report.setdefault(source.name, Counter())
        train, test, has_test = _normalise_all(source, cfg, normalise, counts, report)
        rng = random.Random(f"{cfg.seed}:{source.name}")
        rng.shuffle(train)
        if not has_test and cfg.test_split_size > 0 and train:
            size = cfg.test_split_size
            held = max(0, min(len(train) - 1, int(size) if size >= 1 else round(size * len(train))))
            test, train = train[:held], train[held:]
            counts["held_out"] += held
        loaded.append((source, counts, train, test))
    # every source's test rows, so that a test split listed under another source cannot leak into training
    test_keys = {_key(user_texts(item)) for _, _, _, test in loaded for item in test}
    all_train, all_test = [], []
    for source, counts, train, test in loaded:
        kept = []
        for item in progress(train, desc=f"checking {Path(source.name).name}"):
            texts = user_texts(item)
            if _key(texts) in test_keys:
                counts["duplicate_of_test"] += 1
            elif index is not None and index.contaminated(texts):
                counts["decontaminated"] += 1
            else:
                kept.append(item)
        take = int(source.fraction * len(kept))
        counts["not_sampled"] += len(kept) - take
        counts["train"] += take
        counts["test"] += len(test)
        all_train += kept[:take]
        all_test += test
    rng = random.Random(cfg.seed)
    rng.shuffle(all_train)
    rng.shuffle(all_test)
    for rows, cap, name in ((all_train, cfg.max_train_samples, "train"), (all_test, cfg.max_eval_samples, "test")):
        if cap is not None and len(rows) > cap:
            report.notes.append(f"max_{'eval' if name == 'test' else name}_samples: kept {cap} of {len(rows)} "
                                f"{name} rows")
            del rows[cap:]
    return Splits(all_train, all_test, report)


def _key(texts: list[str]) -> tuple[str, ...]:
    return tuple(" ".join(t.split()) for t in texts)


# ---- the two kinds of data -------------------------------------------------------------------------------

def chat_item(cfg: DataConfig) -> Callable:
    def normalise(row: Any, where: Where, counts: Counter) -> list[dict] | None:
        messages = schemas.chat_messages(row, where)
        if cfg.chat_filter:
            messages = filter_dialogue(messages, counts)
            if messages is None:
                return None
        return schemas.check_conversation(messages, where)

    return normalise


def pair_item(cfg: DataConfig) -> Callable:
    def normalise(row: Any, where: Where, counts: Counter) -> dict | None:
        if schemas.detect(row, where, "chosen") == schemas.RAW_ULTRAFEEDBACK:
            return binarize_row(row, where, cfg.seed, counts, cfg.binarize_rule)
        return schemas.pair(row, where)

    return normalise


def chat_user_texts(conversation: list[dict]) -> list[str]:
    return [m["content"] for m in conversation if m["role"] == "user"]


def pair_user_texts(pair: dict) -> list[str]:
    return chat_user_texts(pair["prompt"])


def load_chat_splits(cfg: DataConfig) -> Splits:
    """Conversations (lists of {role, content}, ending with the assistant) for SFT, mixed and split."""
    return mix(cfg, chat_item(cfg), chat_user_texts)


def load_preference_splits(cfg: DataConfig) -> Splits:
    """Preference pairs {prompt: [messages], chosen: str, rejected: str, score_*} for DPO, mixed and split."""
    return mix(cfg, pair_item(cfg), pair_user_texts)
