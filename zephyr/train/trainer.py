"""A small training loop on accelerate, generic over the loss: SFT and DPO plug in a `loss_fn`.

    trainer = Trainer(config, model, loss_fn, train_items, collate, eval_items, tokenizer=tok, recipe=cfg)
    result = trainer.train()

- `train_items`: one entry per micro-batch (e.g. a list of packed rows); `collate(item) -> dict` turns it into
  tensors. Each epoch visits the items in a seeded permutation, split across processes. `data_fingerprint`: a
  hash of their content (the stages give one), which a resumed run must match.
- `loss_fn(model, batch) -> (loss_sum, n_targets, metrics)`: a *sum* over the batch's targets (tokens for
  SFT, pairs for DPO), their count, and a dict of metric *sums* over the same targets (logged divided by
  the count). `batch["n_targets"]` must hold that count before the forward pass.
- Exact gradient accumulation: every micro-batch's loss sum is divided by the number of targets in the whole
  optimizer step (all micro-batches, all processes), so GA x B equals one batch of GA*B (tested).
- Precision: `mixed_precision` ("bf16") autocasts every loss_fn call, policy and reference alike, over fp32
  master weights (zephyr.train.precision.master_weights makes them and returns the value).
- Distributed: accelerate launches (DDP, DeepSpeed ZeRO-3 via `accelerate launch --config_file ...`); with
  `fsdp: true` the model is sharded by zephyr.train.fsdp (FSDP2, per decoder layer) on CPU and GPU alike.
- Output folder (zephyr.train.output_dir): locked for the run; one holding another run is refused unless
  `overwrite_output_dir` (emptied) or `resume` with the same settings.
- Checkpoints (zephyr.train.checkpoint) every `save_steps` and at the end; `resume` restores weights, optimizer,
  scheduler, RNG and the data position (without unpickling anything), so a resumed run matches an uninterrupted
  one.
- Logs: tqdm bar (loss, lr, tokens/s, ETA) and the `report_to` sinks (metrics.jsonl, tensorboard, wandb); eval
  every `eval_steps`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import yaml
from tqdm.auto import tqdm

from ..config import to_dict
from ..errors import ConfigError, ZephyrError
from . import fsdp
from .checkpoint import (OPTIMIZER, SCHEDULER, TRAINABLE, disk_full, latest_checkpoint, load_rng, load_tensors_dict,
                         load_trainable, no_space_error, read_state, rotate, save_checkpoint, save_rng,
                         save_tensors_dict, save_trainable)
from .config import TrainConfig
from .metrics_log import MetricsLog
from .output_dir import claim
from .precision import MIXED_PRECISION, autocast
from .scoring import unwrap
from .signed_state import sign_folder, verify_folder

LossFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, int, dict[str, torch.Tensor]]]


@dataclasses.dataclass
class TrainResult:
    global_step: int
    train_loss: float | None
    eval_metrics: dict[str, float]
    log_history: list[dict[str, Any]]
    output_dir: Path


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each decoder layer in the backward pass (non-reentrant: works with frozen inputs, e.g. LoRA)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def compile_layers(model: torch.nn.Module, **options) -> None:
    """torch.compile each decoder layer in place (parameter names, hence checkpoints, unchanged); attention itself
    stays outside the compiled code (zephyr/train/attention.py), so packed batches of any shape reuse it.
    `options` go to torch.compile (tests pass a light backend)."""
    for layer in fsdp.decoder_layers(model):
        layer.compile(**options)


def adamw(groups: list[dict], config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the config's settings, as PyTorch's fused kernel on CUDA and CPU: one pass over each weight with
    no temporaries (a full fine-tune of gemma-3-270m steps 1.2x faster on the CPU than with the default per-tensor
    loop, benchmarks/README.md)."""
    fused = torch.device(device).type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                             eps=config.adam_epsilon, fused=fused or None)


def _plus(total: float | torch.Tensor, value) -> float | torch.Tensor:
    """total + value, a device tensor when value is one (float64: float() of float32 values summed in Python
    gives the same numbers), else a Python float."""
    if torch.is_tensor(value):
        return value.detach().to(torch.float64) + total
    return total + float(value)


class Trainer:
    def __init__(self, config: TrainConfig, model: torch.nn.Module, loss_fn: LossFn, train_items: Sequence,
                 collate: Callable[[Any], dict], eval_items: Sequence = (), tokenizer=None, recipe: Any = None,
                 accelerator=None, callbacks: Sequence[Callable[["Trainer", str, int], None]] = (),
                 mixed_precision: str = "no", data_fingerprint: str | None = None):
        from accelerate import Accelerator
        from accelerate.utils import DistributedType, set_seed

        self.config = config
        # autocast is ours (below), not accelerate's `mixed_precision`: that is one per process, and a launch
        # config's value (DeepSpeed's bf16 mode keeps its own fp32 masters) still applies
        self.accelerator = accelerator or Accelerator(gradient_accumulation_steps=config.gradient_accumulation_steps)
        if mixed_precision not in MIXED_PRECISION.values():
            raise ConfigError(f"mixed_precision: {mixed_precision!r} is not one of "
                              f"{', '.join(MIXED_PRECISION.values())} (zephyr.train.precision.master_weights gives it)")
        self.mixed_precision = mixed_precision
        if self.accelerator.gradient_accumulation_steps != config.gradient_accumulation_steps:
            raise ConfigError("the Accelerator's gradient_accumulation_steps must equal the config's")
        self.sharded = self.accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        set_seed(config.seed)
        if config.gradient_checkpointing:
            enable_checkpointing(unwrap(model))
        if config.compile:
            compile_layers(unwrap(model))
        self.loss_fn, self.collate, self.callbacks = loss_fn, collate, list(callbacks)
        self.train_items, self.eval_items = list(train_items), list(eval_items)
        self.tokenizer = tokenizer
        self.data_fingerprint = data_fingerprint  # of the training data's content: a resume must see the same
        # the run's settings: recipe.yaml beside each saved model, and the trackers' run configuration
        self.recipe = None if recipe is None else (
            to_dict(recipe) if dataclasses.is_dataclass(recipe) else dict(recipe))
        self.output_dir = Path(config.output_dir)
        self.log_history: list[dict[str, Any]] = []

        self.steps_per_epoch = self._local_count(len(self.train_items)) // config.gradient_accumulation_steps
        if self.steps_per_epoch == 0:
            raise ConfigError(f"only {len(self.train_items)} micro-batches for {self.accelerator.num_processes} "
                              f"process(es) x gradient_accumulation_steps={config.gradient_accumulation_steps}: "
                              "not one optimizer step; lower the batch size or accumulation, or add data")
        self.total_steps = config.max_steps if config.max_steps > 0 else max(
            1, math.ceil(config.num_train_epochs * self.steps_per_epoch))

        # FSDP2 (zephyr/train/fsdp.py): sharded before the optimizer takes the parameters; accelerate then sees
        # neither the model (it would wrap it in DDP) nor the optimizer (its save_state would keep rank 0's shard)
        self.fsdp = config.fsdp
        if self.fsdp:
            fsdp.shard(model, self.accelerator)
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
        optimizer = adamw([{"params": decay, "weight_decay": config.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], config, self.accelerator.device)
        if self.fsdp:
            self.model, self.optimizer = model, optimizer
        else:
            if self.accelerator.distributed_type == DistributedType.DEEPSPEED:  # it reads these off a dataloader,
                # and the trainer prepares none
                self.accelerator.state.deepspeed_plugin.deepspeed_config.update(
                    train_micro_batch_size_per_gpu=config.per_device_train_batch_size,
                    train_batch_size=config.per_device_train_batch_size * config.gradient_accumulation_steps
                    * self.accelerator.num_processes)
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(config.lr_scheduler_type, self.optimizer,
                                       num_warmup_steps=math.ceil(config.warmup_ratio * self.total_steps),
                                       num_training_steps=self.total_steps)
        if self.sharded:  # DeepSpeed / accelerate's FSDP plugin: their engine state is saved through accelerate
            self.accelerator.register_for_checkpointing(self.scheduler)
        # the output folder: locked for this run and free of other runs' files before anything is written
        self.lock = claim(self.output_dir, self.recipe if self.recipe is not None else to_dict(config), config.resume,
                          config.overwrite_output_dir) if self.accelerator.is_main_process else None
        self.accelerator.wait_for_everyone()
        self.metrics = MetricsLog(self.output_dir, config.report_to, self.accelerator.is_main_process,
                                  run_name=self.output_dir.name, config=self.recipe)

    # ---- data order -------------------------------------------------------------------------------------
    def _local_count(self, n: int) -> int:
        return n // self.accelerator.num_processes

    def epoch_order(self, epoch: int) -> list[int]:
        """This process's micro-batch indices for `epoch`: a seeded permutation, strided across processes."""
        perm = torch.randperm(len(self.train_items), generator=torch.Generator().manual_seed(self.config.seed + epoch))
        acc = self.accelerator
        usable = self._local_count(len(perm)) * acc.num_processes
        return perm[acc.process_index:usable:acc.num_processes].tolist()

    def _to_device(self, batch: dict) -> dict:
        # asynchronous copies: a blocking host-to-device copy waits for all queued GPU work
        return {k: v.to(self.accelerator.device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def _step_targets(self, local_targets: float) -> float | torch.Tensor:
        """Targets of the optimizer step over all processes: a host number on one process, else a device tensor
        summed over processes (never read back: the loss scale stays on the device)."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return float(local_targets)
        value = torch.tensor(float(local_targets), dtype=torch.float64)
        if acc.device.type == "cuda":
            value = value.pin_memory()
        return acc.reduce(value.to(acc.device, non_blocking=True), "sum")

    # ---- training ---------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        try:
            return self._train()
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _train(self) -> TrainResult:
        cfg, acc = self.config, self.accelerator
        ga = cfg.gradient_accumulation_steps
        step = self._resume() if cfg.resume else 0
        if step == 0 and acc.is_main_process:
            self.metrics.restart([])
        bar = tqdm(total=self.total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress_bar and acc.is_main_process))
        interval = self._new_interval(step)
        order, order_epoch = None, -1
        while step < self.total_steps:
            epoch, within = divmod(step, self.steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = self.epoch_order(epoch), epoch
            batches = [self._to_device(self.collate(self.train_items[i])) for i in order[within * ga:(within + 1) * ga]]
            local_targets = sum(int(b["n_targets"]) for b in batches)
            step_targets = self._step_targets(local_targets)
            # accelerate divides by ga in backward, DDP averages over processes: undo both, divide by all targets
            scale = (ga * acc.num_processes / max(step_targets, 1.0) if isinstance(step_targets, float)
                     else (ga * acc.num_processes / step_targets.clamp(min=1.0)).float())
            self.model.train()
            for batch in batches:
                with acc.accumulate(self.model):
                    if self.fsdp:  # accumulate unsharded gradients locally; reduce-scatter on the last micro-batch
                        self.model.set_requires_gradient_sync(acc.sync_gradients)
                    with autocast(acc.device, self.mixed_precision):  # the reference model's forward too
                        loss_sum, n_targets, sums = self.loss_fn(self.model, batch)
                    acc.backward(loss_sum * scale)
                    if acc.sync_gradients:
                        if cfg.max_grad_norm > 0:
                            norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                            interval["grad_norm"] = norm.detach() if norm is not None else float("nan")
                        interval["learning_rate"] = self.scheduler.get_last_lr()[0]  # the rate this step used
                        self.optimizer.step()
                        self.scheduler.step()
                        self.optimizer.zero_grad(set_to_none=True)
                self._accumulate(interval, loss_sum, n_targets, sums, batch)
            step += 1
            bar.update(1)
            for callback in self.callbacks:
                callback(self, "step_end", step)
            if step % max(cfg.logging_steps, 1) == 0 or step == self.total_steps:
                record = self._log_interval(interval, step)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['learning_rate']:.2e}",
                                tok_s=f"{record['tokens_per_s']:.0f}")
                interval = self._new_interval(step)
            end_of_epoch = step % self.steps_per_epoch == 0
            if self.eval_items and (step == self.total_steps or (
                    cfg.eval_steps > 0 and step % cfg.eval_steps == 0) or (cfg.eval_steps <= 0 and end_of_epoch)):
                self.evaluate(step)
            if step == self.total_steps or (cfg.save_steps > 0 and step % cfg.save_steps == 0):
                self.save_checkpoint(step)
        bar.close()
        self.save_final()
        self.metrics.close()
        train_losses = [r["loss"] for r in self.log_history if "loss" in r]
        evals = [r for r in self.log_history if "eval_loss" in r]
        return TrainResult(step, train_losses[-1] if train_losses else None,
                           {k: v for k, v in evals[-1].items() if k.startswith("eval_")} if evals else {},
                           self.log_history, self.output_dir)

    def _new_interval(self, step: int) -> dict[str, Any]:
        return {"loss_sum": 0.0, "targets": 0.0, "tokens": 0.0, "sums": {}, "start": time.perf_counter(),
                "first_step": step}

    def _accumulate(self, interval: dict, loss_sum, n_targets, sums: dict, batch: dict) -> None:
        """Add a micro-batch's sums to the interval without reading device values back: tensors stay on the
        device (in float64, as exact as the Python floats they become at logging time)."""
        interval["loss_sum"] = _plus(interval["loss_sum"], loss_sum)
        interval["targets"] = _plus(interval["targets"], n_targets)
        interval["tokens"] = _plus(interval["tokens"], batch.get("n_tokens", 0))
        for key, value in sums.items():
            interval["sums"][key] = _plus(interval["sums"].get(key, 0.0), value)

    def _reduced(self, values: list) -> list[float]:
        """Python numbers and device tensors -> their sums over processes, read back in one transfer."""
        device = self.accelerator.device
        stacked = torch.stack([v.detach().to(device, torch.float64) if torch.is_tensor(v)
                               else torch.tensor(float(v), dtype=torch.float64, device=device) for v in values])
        return self.accelerator.reduce(stacked, "sum").tolist()

    def _log_interval(self, interval: dict, step: int) -> dict[str, Any]:
        keys = sorted(interval["sums"])
        totals = self._reduced([interval["loss_sum"], interval["targets"], interval["tokens"]] +
                               [interval["sums"][k] for k in keys])
        loss_sum, targets, tokens = totals[:3]
        seconds = time.perf_counter() - interval["start"]
        steps = step - interval["first_step"]
        record = {"step": step, "epoch": round(step / self.steps_per_epoch, 4),
                  "loss": loss_sum / max(targets, 1.0),
                  "learning_rate": interval.get("learning_rate", self.scheduler.get_last_lr()[0]),
                  "tokens_per_s": tokens / max(seconds, 1e-9), "seconds_per_step": seconds / max(steps, 1)}
        if "grad_norm" in interval:
            record["grad_norm"] = float(interval["grad_norm"])
        record.update({k: v / max(targets, 1.0) for k, v in zip(keys, totals[3:])})
        self._record(record)
        return record

    def _record(self, record: dict[str, Any]) -> None:
        self.log_history.append(record)
        if self.accelerator.is_main_process:
            self.metrics.log(record)

    # ---- evaluation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, step: int | None = None) -> dict[str, float]:
        """Target-weighted loss (and metrics) over the eval items; logged when `step` is given."""
        acc = self.accelerator
        self.model.eval()
        # every process runs the same number of forwards (sharded models need all of them); extras weigh 0
        per_process = math.ceil(len(self.eval_items) / acc.num_processes)
        mine = list(range(acc.process_index, len(self.eval_items), acc.num_processes))
        loss_sum, targets, sums = 0.0, 0.0, {}
        for k in tqdm(range(per_process), desc="eval", unit="batch", dynamic_ncols=True, leave=False,
                      disable=not (self.config.progress_bar and acc.is_main_process)):
            weight = 1.0 if k < len(mine) else 0.0
            batch = self._to_device(self.collate(self.eval_items[mine[k] if weight else 0]))
            with autocast(acc.device, self.mixed_precision):
                value, n, metric_sums = self.loss_fn(self.model, batch)
            loss_sum += weight * float(value)
            targets += weight * float(n)
            for key, v in metric_sums.items():
                sums[key] = sums.get(key, 0.0) + weight * float(v)
        keys = sorted(sums)
        totals = self._reduced([loss_sum, targets] + [sums[k] for k in keys])
        result = {"eval_loss": totals[0] / max(totals[1], 1.0)}
        result.update({f"eval_{k}": v / max(totals[1], 1.0) for k, v in zip(keys, totals[2:])})
        if step is not None:
            self._record({"step": step, "epoch": round(step / self.steps_per_epoch, 4), **result})
        return result

    # ---- checkpoints ------------------------------------------------------------------------------------
    def trainer_state(self, step: int) -> dict[str, Any]:
        return {"global_step": step, "epoch": step / self.steps_per_epoch, "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "num_processes": self.accelerator.num_processes,
                "gradient_accumulation_steps": self.config.gradient_accumulation_steps,
                "micro_batches_done_in_epoch": (step % self.steps_per_epoch) * self.config.gradient_accumulation_steps,
                "data_fingerprint": self.data_fingerprint,
                "log_history": self.log_history}

    def write_model(self, folder: Path) -> None:
        """Model (safetensors; adapter only for LoRA), tokenizer with its chat template, and the recipe."""
        acc = self.accelerator
        state = acc.get_state_dict(self.model) if self.sharded else None  # collective under FSDP / ZeRO-3
        if self.fsdp:
            state = fsdp.full_state_dict(self.model)  # collective: gathered on the main process
        if not acc.is_main_process:
            return
        prepared = acc.unwrap_model(self.model)
        inner = unwrap(prepared, keep_peft=True)  # a PEFT model saves its adapter only
        kwargs: dict[str, Any] = {"safe_serialization": True}
        if state is not None:  # a TokenScorer's state names its model "model."
            prefix = "model." if inner is not prepared else ""
            kwargs["state_dict"] = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        inner.save_pretrained(folder, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder)
        if self.recipe is not None:
            (Path(folder) / "recipe.yaml").write_text(yaml.safe_dump(self.recipe, sort_keys=False))

    def save_checkpoint(self, step: int) -> Path:
        path = save_checkpoint(self.accelerator, self.output_dir, step, self.trainer_state(step), self.write_state,
                               self.write_model)
        if self.accelerator.is_main_process:
            rotate(self.output_dir, self.config.save_total_limit)
        self.accelerator.wait_for_everyone()
        return path

    def write_state(self, folder: Path) -> None:
        """The training state (see zephyr.train.checkpoint), each process writing its own part."""
        acc = self.accelerator
        if self.sharded:  # DeepSpeed / accelerate FSDP engines: accelerate's own (pickled) format, signed
            acc.save_state(str(folder), safe_serialization=True)
            acc.wait_for_everyone()
            if acc.is_main_process:
                sign_folder(folder)
            return
        if self.fsdp:
            fsdp.save_sharded(self.model, self.optimizer, folder / fsdp.FOLDER)
        elif acc.is_main_process:  # replicated: one copy (trainable tensors only: a LoRA state stays adapter-sized)
            save_trainable(acc.unwrap_model(self.model), folder)
            save_tensors_dict(self.optimizer.state_dict(), folder / OPTIMIZER)
        if acc.is_main_process:
            save_tensors_dict(self.scheduler.state_dict(), folder / SCHEDULER)
        save_rng(folder, acc.process_index, acc.step)

    def load_state(self, folder: Path) -> None:
        """Read back what write_state wrote, never unpickling anything (see zephyr.train.checkpoint)."""
        acc = self.accelerator
        if self.sharded:
            self._verify_signed(folder)
            acc.load_state(str(folder))
            return
        if not (folder / SCHEDULER).is_file() or not (self.fsdp or (folder / TRAINABLE).is_file()):
            raise ConfigError(f"cannot resume from {folder.parent}: it holds no {SCHEDULER}/{TRAINABLE} (a checkpoint "
                              "of another format, whose pickled state is not loaded); start over with "
                              "--overwrite_output_dir")
        if self.fsdp:
            fsdp.load_sharded(self.model, self.optimizer, folder / fsdp.FOLDER)
        else:
            load_trainable(acc.unwrap_model(self.model), folder)
            self.optimizer.load_state_dict(load_tensors_dict(folder / OPTIMIZER, map_location=acc.device))
        self.scheduler.load_state_dict(load_tensors_dict(folder / SCHEDULER))
        acc.step = load_rng(folder, acc.process_index)

    def _verify_signed(self, folder: Path) -> None:
        """The main process checks the signature; every process learns the verdict before anything is unpickled."""
        from accelerate.utils import broadcast_object_list

        verdict = [""]
        if self.accelerator.is_main_process:
            try:
                verify_folder(folder)
            except ZephyrError as err:
                verdict = [str(err)]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(verdict, from_process=0)
        if verdict[0]:
            raise ZephyrError(verdict[0])

    def save_final(self) -> None:
        try:
            self.write_model(self.output_dir)
        except Exception as err:
            if not disk_full(err):
                raise
            raise no_space_error(self.output_dir, "the final model") from err
        self.accelerator.wait_for_everyone()

    def _resume(self) -> int:
        checkpoint = latest_checkpoint(self.output_dir)
        if checkpoint is None:
            if self.accelerator.is_main_process:
                print(f"zephyr: no complete checkpoint in {self.output_dir}; starting from step 0", flush=True)
            return 0
        state = read_state(checkpoint)
        for key in ("steps_per_epoch", "num_processes", "gradient_accumulation_steps"):
            current = self.trainer_state(0)[key]
            if state[key] != current:
                raise ConfigError(f"cannot resume from {checkpoint}: it was written with {key}={state[key]}, "
                                  f"this run has {current} (the data position would not match)")
        if None not in (state.get("data_fingerprint"), self.data_fingerprint) and \
                state["data_fingerprint"] != self.data_fingerprint:
            raise ConfigError(f"cannot resume from {checkpoint}: it was trained on other data (same settings, but "
                              "the tokenized training set differs: changed data files?); start over with "
                              "--overwrite_output_dir or restore the data")
        self.load_state(checkpoint / "state")
        self.log_history = list(state["log_history"])
        if self.accelerator.is_main_process:
            self.metrics.restart(self.log_history)
            print(f"zephyr: resumed from {checkpoint} (step {state['global_step']})", flush=True)
        return int(state["global_step"])
