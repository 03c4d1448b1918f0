"""`TrainConfig`: the optimisation, schedule, checkpoint and logging fields every training stage shares.

Names and defaults follow transformers' TrainingArguments (what alignment-handbook recipes use), so the
published recipe values carry over field for field.
"""

from __future__ import annotations

import dataclasses
import math

from ..config import SeedConfig, field
from ..errors import ConfigError
from .metrics_log import check_report_to

# transformers schedulers that need nothing beyond the warmup and total steps (the others need metrics or kwargs)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt")


@dataclasses.dataclass
class TrainConfig(SeedConfig):
    """Optimisation, schedule, checkpoints and logging (shared by SFT and DPO)."""

    output_dir: str = field("runs/out", help="where checkpoints, metrics.jsonl, the final model and its card go")
    learning_rate: float = field(2e-5, help="peak learning rate of AdamW")
    lr_scheduler_type: str = field("cosine", help=f"learning-rate schedule: {', '.join(SCHEDULERS)}")
    warmup_ratio: float = field(0.1, help="fraction of the optimizer steps spent warming up linearly from 0")
    num_train_epochs: float = field(1.0, help="passes over the training data (ignored when max_steps > 0)")
    max_steps: int = field(-1, help="stop after this many optimizer steps (> 0 overrides num_train_epochs)")
    per_device_train_batch_size: int = field(16, help="micro-batch per device: packed rows (SFT) or pairs (DPO)")
    per_device_eval_batch_size: int = field(8, help="eval micro-batch per device, same unit as the train one")
    gradient_accumulation_steps: int = field(1, help="micro-batches per optimizer step; exact: the loss is normalised over the whole step")
    weight_decay: float = field(0.0, help="AdamW decoupled weight decay")
    adam_beta1: float = field(0.9, help="AdamW beta1")
    adam_beta2: float = field(0.999, help="AdamW beta2")
    adam_epsilon: float = field(1e-8, help="AdamW epsilon")
    max_grad_norm: float = field(1.0, help="clip the global gradient norm to this (0 = no clipping)")
    low_precision_weights: bool = field(False, help="keep trainable weights and AdamW state in the compute dtype (bf16/fp16) instead of fp32 masters: half the memory, but updates below ~1/256 of a weight are rounded away (at lr 5e-7 most weights never move); warns")
    gradient_checkpointing: bool = field(False, help="recompute activations in the backward pass to save memory")
    logit_chunk_size: int = field(0, help="tokens per lm_head chunk, so full-vocabulary logits are never held for more "
                                          "(0: from the logit budget, 128M logits at a time: 512 tokens for a 262k "
                                          "vocabulary; > 0: at most this many)")
    logging_steps: int = field(5, help="log train loss, lr, grad norm, tokens/s every N optimizer steps")
    eval_steps: int = field(0, help="evaluate on the test split every N steps (0: at the end of each epoch)")
    save_steps: int = field(100, help="write a checkpoint every N steps (0: only at the end)")
    save_total_limit: int = field(1, help="keep at most this many checkpoints (oldest deleted; 0 = keep all)")
    resume: bool = field(False, help="continue from the newest complete checkpoint in output_dir (weights, optimizer, scheduler, RNG, data position)")
    overwrite_output_dir: bool = field(False, help="delete what output_dir holds (another run's checkpoints and model) before training; without it a folder holding a different run is refused")
    report_to: list[str] = field(["jsonl"], help="metric sinks: none, jsonl (output_dir/metrics.jsonl), tensorboard, wandb (pip install \"zephyr[track]\"), all (jsonl and every tracker installed)")
    fsdp: bool = field(False, help="shard weights, gradients and AdamW state across processes with FSDP2, one unit per decoder layer (launch with torchrun or accelerate launch --config_file recipes/accelerate/fsdp.yaml)")
    progress_bar: bool = field(True, help="show a tqdm bar with loss, lr, tokens/s and ETA")
    hub_model_id: str = field("", help="name written into the model card (default: the output folder's name)")
    compile: bool = field(False, help="torch.compile each decoder layer (attention stays outside the compiled code); the first steps pay the compilation")

    def __post_init__(self):
        check_report_to(self.report_to)  # a missing tracker is an error before any model loads
        self.check_ranges()
        rest = getattr(super(), "__post_init__", None)  # the model fields' checks, in a stage config
        if rest is not None:
            rest()

    def check_ranges(self) -> None:
        """Every number within the range its help gives, every name one that exists: `--field: problem`."""
        if self.lr_scheduler_type not in SCHEDULERS:
            raise ConfigError(f"--lr_scheduler_type: {self.lr_scheduler_type!r} is not one of {', '.join(SCHEDULERS)}")
        at_least(self, "learning_rate", 0.0)
        between(self, "warmup_ratio", 0.0, 1.0)
        at_least(self, "num_train_epochs", 0.0)
        if self.max_steps <= 0 and self.num_train_epochs == 0:
            raise ConfigError("--num_train_epochs: must be > 0 (or give --max_steps > 0)")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "logging_steps"):
            at_least(self, name, 1)
        for name in ("weight_decay", "max_grad_norm", "logit_chunk_size", "eval_steps", "save_steps",
                     "save_total_limit"):
            at_least(self, name, 0)
        between(self, "adam_beta1", 0.0, 1.0, high_open=True)
        between(self, "adam_beta2", 0.0, 1.0, high_open=True)
        if not (math.isfinite(self.adam_epsilon) and self.adam_epsilon > 0):
            raise ConfigError(f"--adam_epsilon: must be a number > 0, got {self.adam_epsilon}")
        if self.resume and self.overwrite_output_dir:
            raise ConfigError("--overwrite_output_dir: cannot be combined with --resume (one continues the run in "
                              "output_dir, the other deletes it)")


def at_least(config, name: str, low: float) -> None:
    """ConfigError `--name: must be a number >= low` unless the field is finite and >= low."""
    value = getattr(config, name)
    if not (math.isfinite(value) and value >= low):
        raise ConfigError(f"--{name}: must be a number >= {low:g}, got {value}")


def between(config, name: str, low: float, high: float, high_open: bool = False) -> None:
    """ConfigError unless low <= field <= high (< high with `high_open`)."""
    value = getattr(config, name)
    if not (math.isfinite(value) and low <= value and (value < high if high_open else value <= high)):
        raise ConfigError(f"--{name}: must be in [{low:g}, {high:g}{')' if high_open else ']'}, got {value}")
