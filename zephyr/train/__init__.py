"""Shared training machinery for the SFT and DPO stages.

- `TrainConfig` (config.py): lr, schedule, epochs/max_steps, batch sizes, accumulation, checkpoints, logging.
- `Trainer` (trainer.py): accelerate-based loop over micro-batch items; pluggable
  `loss_fn(model, batch) -> (loss_sum, n_targets, metric_sums)`; exact gradient accumulation (normalised by the
  targets of the whole optimizer step); atomic checkpoints + resume; tqdm / metrics.jsonl / tensorboard; eval.
- `TokenScorer` (forward.py): wraps a causal LM (or PEFT model); forward(input_ids, position_ids, target_index,
  target_ids) -> (log p(target) per target, mean logit per target), guarded so packed rows stay isolated.
- `token_logps`, `token_logps_checkpointed`, `sequence_sums` (logprobs.py): log-probs from final hidden states
  through the lm_head in chunks, never materialising full-vocabulary logits for all positions; per-sequence sums.
- packing.py: `Tokenized`, `truncate`, `pack` (best-fit decreasing into rows), `group_rows`, `collate_rows`.
- checkpoint.py: `latest_checkpoint`, `checkpoint_dirs`, atomic `save_checkpoint`.
"""

from .checkpoint import checkpoint_dirs, latest_checkpoint
from .config import TrainConfig
from .forward import TokenScorer, causal_lm_of, decoder_hidden
from .logprobs import sequence_sums, token_logps, token_logps_checkpointed
from .metrics_log import read_metrics
from .packing import PackStats, Tokenized, best_fit_decreasing, collate_rows, group_rows, pack, truncate
from .trainer import Trainer, TrainResult, hf_model_of

__all__ = ["TrainConfig", "Trainer", "TrainResult", "TokenScorer", "causal_lm_of", "decoder_hidden", "hf_model_of",
           "token_logps", "token_logps_checkpointed", "sequence_sums", "Tokenized", "PackStats", "truncate", "pack",
           "best_fit_decreasing", "group_rows", "collate_rows", "checkpoint_dirs", "latest_checkpoint",
           "read_metrics"]
