"""`DPOConfig`: model + data + training fields, and the preference-optimisation ones.

Defaults are TRL DPOConfig's / the alignment-handbook recipes' where they exist (beta 0.1, max_length 1024,
max_prompt_length 512); recipes override them field by field.
"""

from __future__ import annotations

import dataclasses

from ..config import field
from ..data.config import DataConfig
from ..errors import ConfigError
from ..models import LoraModelConfig
from ..train.config import TrainConfig
from .layout import LAYOUTS
from .losses import LossConfig
from .reference import MODES


@dataclasses.dataclass
class DPOConfig(TrainConfig, DataConfig, LossConfig, LoraModelConfig):
    """dDPO: preference optimisation of a chat model on chosen/rejected pairs."""

    max_length: int = field(1024, help="longest prompt + completion in tokens; completions are cut on the right to "
                                       "fit; a packed row holds 2 x max_length tokens, so one whole pair always fits")
    max_prompt_length: int = field(512, help="longest prompt in tokens; longer prompts lose their beginning")
    reference: str = field("auto", help="reference log-probs: auto (adapter with LoRA, else copy), copy (frozen second model), adapter (LoRA policy with the adapter off), precompute (once, cached on disk), none (reference-free losses)")
    ref_cache_dir: str = field("", help="where precomputed reference log-probs are cached (default: ~/.cache/zephyr/ref_logps)")
    layout: str = field("shared", help="shared (prompt encoded once per pair, packed rows), packed (chosen and rejected as separate packed sequences), padded (TRL's: right-padded rows), auto (shared)")

    @property
    def row_tokens(self) -> int:
        """Tokens per packed row: a pair (prompt + chosen + rejected) of max_length completions always fits."""
        return 2 * self.max_length

    def __post_init__(self):
        super().__post_init__()  # training, loss and model fields
        if self.reference not in MODES:
            raise ConfigError(f"--reference: {self.reference!r} is not one of {', '.join(MODES)}")
        if self.layout not in (*LAYOUTS, "auto"):
            raise ConfigError(f"--layout: {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        if self.max_length < 2:  # at least one prompt token and one completion token
            raise ConfigError(f"--max_length: must be >= 2 tokens, got {self.max_length}")
        if self.max_prompt_length < 1:  # a pair without a prompt token is dropped: 0 would drop them all
            raise ConfigError(f"--max_prompt_length: must be >= 1 token, got {self.max_prompt_length}")
        self.reference_mode()  # raises for a reference the loss or the LoRA setting cannot use

    def reference_mode(self) -> str:
        """The concrete reference strategy `auto` stands for."""
        if self.loss.reference_free:
            return "none"
        if self.reference == "none":
            raise ConfigError(f"reference: none is only for reference-free losses, not {self.loss_type!r}")
        if self.reference == "auto":
            return "adapter" if self.use_lora else "copy"
        if self.reference == "adapter" and not self.use_lora:
            raise ConfigError("reference: adapter needs use_lora: true (without LoRA use copy or precompute)")
        return self.reference
