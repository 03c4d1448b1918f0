"""Shared training machinery for the SFT and DPO stages.

- `TrainConfig` (config.py): lr, schedule, epochs/max_steps, batch sizes, accumulation, checkpoints, logging.
- `Trainer` (trainer.py): accelerate-based loop over micro-batch items; pluggable
  `loss_fn(model, batch) -> (loss_sum, n_targets, metric_sums)`; exact gradient accumulation (normalised by the
  targets of the whole optimizer step); atomic checkpoints + resume; tqdm / metrics.jsonl / tensorboard; eval.
- `TokenScorer` (scoring.py): wraps a causal LM (or PEFT model); forward(input_ids, position_ids, target_index,
  target_ids, attention) -> (log p(target) per target, mean logit per target), guarded so packed rows stay
  isolated; SFT and DPO both score through it. `unwrap(model)`: the causal LM inside every wrapper.
- `token_logps`, `token_logps_checkpointed` (chunked_lm_head.py): log-probs from final hidden states through the
  lm_head in chunks, never materialising full-vocabulary logits for all positions.
- packing.py: `Tokenized`, `truncate`, `pack` (best-fit decreasing into rows), `group_rows`, `collate_rows`.
- checkpoint.py: `latest_checkpoint`, `checkpoint_dirs`, atomic `save_checkpoint`.
"""

from .checkpoint import checkpoint_dirs, latest_checkpoint
from .chunked_lm_head import token_logps, token_logps_checkpointed
from .config import TrainConfig
from .metrics_log import read_metrics
from .packing import PackStats, Tokenized, best_fit_decreasing, collate_rows, group_rows, pack, truncate
from .scoring import TokenScorer, decoder_hidden, unwrap
from .trainer import Trainer, TrainResult

__all__ = ["TrainConfig", "Trainer", "TrainResult", "TokenScorer", "decoder_hidden", "unwrap", "token_logps",
           "token_logps_checkpointed", "Tokenized", "PackStats", "truncate", "pack", "best_fit_decreasing",
           "group_rows", "collate_rows", "checkpoint_dirs", "latest_checkpoint", "read_metrics"]
