"""`SFTConfig`: model + data + training fields, the one recipe of `zephyr sft`."""

from __future__ import annotations

import dataclasses

from ..config import field
from ..data import DataConfig
from ..errors import ConfigError
from ..models import LoraModelConfig
from ..train import TrainConfig

LAYOUTS = ("auto", "rows", "flat")


@dataclasses.dataclass
class SFTConfig(TrainConfig, DataConfig, LoraModelConfig):
    """dSFT: fine-tune a base model on dialogues (loss on assistant tokens by default, packed rows)."""

    max_seq_length: int = field(2048, help="tokens per packed row; longer conversations are truncated and counted")
    packing: bool = field(True, help="pack several conversations per row of max_seq_length tokens (isolated by position ids)")
    layout: str = field("auto", help="rows (B x L, CPU sdpa/eager), flat (1 x B*L, flash-attention varlen), or auto")
    assistant_only_loss: bool = field(True, help="loss on the assistant replies (+ end of turn) only; false: on every token of each conversation, prompts and role headers included (the 2023 handbook's SFTTrainer, mistral-7b-sft-beta); never across packed conversations")

    def __post_init__(self):
        super().__post_init__()
        if self.layout not in LAYOUTS:
            raise ConfigError(f"--layout: {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        if self.max_seq_length < 2:  # a row predicts its tokens from the ones before: one target needs two
            raise ConfigError(f"--max_seq_length: must be >= 2 tokens, got {self.max_seq_length}")
