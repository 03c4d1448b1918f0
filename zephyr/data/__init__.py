"""The data layer: load chat and preference data from files or the hub, clean, mix and split it.

Normalised forms used by every later stage:
  conversation = [{"role": "user" | "assistant" | "system", "content": str}, ...]   (ends with the assistant)
  pair = {"prompt": [messages ending with a user turn], "chosen": str, "rejected": str,
          "score_chosen"?: float, "score_rejected"?: float}

    splits = load_chat_splits(DataConfig(dataset_mixer={"HuggingFaceH4/ultrachat_200k": 1.0},
                                         dataset_splits=["train_sft", "test_sft"]))
    print(splits.report)   # rows read, skipped, filtered, decontaminated, ... per source
"""

from .binarize import binarize_row
from .config import DataConfig
from .decontaminate import DEFAULT_NGRAM, EvalIndex, read_eval_prompts
from .io import Where, appending, finished_rows, read_objects, read_rows, write_rows
from .mixer import Report, Splits, load_chat_splits, load_preference_splits
from .ultrachat_filter import filter_dialogue, truecase

__all__ = [
    "DEFAULT_NGRAM", "DataConfig", "EvalIndex", "Report", "Splits", "Where", "appending", "binarize_row",
    "filter_dialogue", "finished_rows", "load_chat_splits", "load_preference_splits", "read_eval_prompts",
    "read_objects", "read_rows", "truecase", "write_rows",
]
