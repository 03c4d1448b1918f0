"""`TrainConfig`: the optimisation, schedule, checkpoint and logging fields every training stage shares.

Names and defaults follow transformers' TrainingArguments (what alignment-handbook recipes use), so the
published recipe values carry over field for field.
"""

from __future__ import annotations

import dataclasses

from ..config import SeedConfig, field
from .metrics_log import check_report_to


@dataclasses.dataclass
class TrainConfig(SeedConfig):
    """Optimisation, schedule, checkpoints and logging (shared by SFT and DPO)."""

    output_dir: str = field("runs/out", help="where checkpoints, metrics.jsonl, the final model and its card go")
    learning_rate: float = field(2e-5, help="peak learning rate of AdamW")
    lr_scheduler_type: str = field("cosine", help="transformers scheduler name: cosine, linear, constant_with_warmup, ...")
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
    report_to: list[str] = field(["jsonl"], help="metric sinks: none, jsonl (output_dir/metrics.jsonl), tensorboard, wandb (pip install \"zephyr[track]\"), all (jsonl and every tracker installed)")
    fsdp: bool = field(False, help="shard weights, gradients and AdamW state across processes with FSDP2, one unit per decoder layer (launch with torchrun or accelerate launch --config_file recipes/accelerate/fsdp.yaml)")
    progress_bar: bool = field(True, help="show a tqdm bar with loss, lr, tokens/s and ETA")
    hub_model_id: str = field("", help="name written into the model card (default: the output folder's name)")
    compile: bool = field(False, help="torch.compile each decoder layer (attention stays outside the compiled code); the first steps pay the compilation")

    def __post_init__(self):
        check_report_to(self.report_to)  # a missing tracker is an error before any model loads
        rest = getattr(super(), "__post_init__", None)  # the model fields' checks, in a stage config
        if rest is not None:
            rest()
