"""`DataConfig`: which data a stage trains and evaluates on. Stage configs inherit it next to TrainConfig."""

from __future__ import annotations

import dataclasses
import math

from ..config import SeedConfig, field
from ..errors import ConfigError
from .binarize import DEFAULT_RULE, RULES
from .decontaminate import DEFAULT_NGRAM


@dataclasses.dataclass
class DataConfig(SeedConfig):
    """Which datasets to mix, how to split them, and how to clean them."""

    dataset_mixer: dict[str, float] = field(
        {}, help="source -> fraction of its training rows to use (0-1). A source is a local .jsonl/.json/.parquet/"
                 ".csv file or folder, or a hub id; 'source@split' picks one split; a value may also be "
                 "{fraction, splits, config, revision}")
    dataset_splits: list[str] = field(
        ["train", "test"], help="splits to read from each source (hub names, or file names in a folder); "
                                "a split whose name contains 'test' is used for evaluation only")
    test_split_size: float = field(
        0.05, help="held-out share of a source's training rows when it has no test split (>= 1: a row count; "
                   "0: none)")
    skip_invalid: bool = field(False, help="skip and count malformed rows instead of stopping at the first one")
    binarize_rule: str = field(
        DEFAULT_RULE, help="how raw UltraFeedback rows (instruction + rated completions) become pairs: "
                           "overall_score (HuggingFaceH4/ultrafeedback_binarized, the data zephyr-7b-beta "
                           "trained on) or mean_rating (Argilla's cleaned release); see zephyr/data/binarize.py")
    chat_filter: bool = field(False, help="clean dialogues as for raw UltraChat: truecase, drop 'as an AI' replies, "
                                          "drop empty or one-sided dialogues")
    decontaminate: list[str] = field(
        [], help="eval prompt files (MT-Bench question.jsonl, AlpacaEval .json, IFEval .jsonl); training rows "
                 "whose prompt shares an n-gram with them are dropped")
    decontaminate_ngram: int = field(DEFAULT_NGRAM, help="n-gram length in words for decontamination")
    max_train_samples: int | None = field(None, help="cap on training rows after mixing (None: all)")
    max_eval_samples: int | None = field(None, help="cap on evaluation rows after mixing (None: all)")

    def __post_init__(self):
        size = self.test_split_size
        if not (math.isfinite(size) and size >= 0 and (size < 1 or float(size).is_integer())):
            raise ConfigError(f"--test_split_size: must be a share from 0 to 1 or a whole row count >= 1, got "
                              f"{size}")
        if self.binarize_rule not in RULES:
            raise ConfigError(f"--binarize_rule: {self.binarize_rule!r} is not one of {', '.join(RULES)}")
        if self.decontaminate_ngram < 1:
            raise ConfigError(f"--decontaminate_ngram: an n-gram has at least 1 word, got "
                              f"{self.decontaminate_ngram}")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"--{name}: must be >= 0 (or None for all rows), got {getattr(self, name)}")
        rest = getattr(super(), "__post_init__", None)  # the next base's checks, in a stage config
        if rest is not None:
            rest()
