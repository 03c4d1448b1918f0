"""FSDP2 sharding done by zephyr itself: the same code on CPU processes (gloo) and on GPUs (nccl).

    shard(model, accelerator)              # every decoder layer, then the root: params, grads, AdamW state
    state = full_state_dict(model)         # collective; the plain fp32 state dict on the main process
    save_sharded(model, optimizer, folder) # collective; torch.distributed.checkpoint, safetensors per process
    load_sharded(model, optimizer, folder) # collective; same world size (the trainer checks it)

accelerate only shards through its FSDP plugin, which it ignores on CPU (it wraps the model in DDP there), so a
test of that path on CPU would not run the code a GPU launch runs. Here the trainer is launched as plain data
parallel (`torchrun` or `accelerate launch` with a MULTI_GPU / MULTI_CPU config), `fully_shard` is applied per
decoder layer and then to the root module, as torchtune and torchtitan do, and accelerate never sees the model.

Each decoder layer (the classes the model names in `_no_split_modules`) is one FSDP unit: its parameters are
all-gathered just before its forward, freed after it (reshard_after_forward) and gathered again for its backward;
the embeddings, the final norm and the lm_head form the root unit. Sharding changes where tensors live, not the
numbers: the shards are the fp32 master weights the optimizer steps (zephyr/train/precision.py), they are
gathered as they are, compute runs under the trainer's bf16 autocast exactly as without FSDP, and gradients are
reduce-scattered in fp32. (Gathering bf16 copies would halve the all-gather traffic, but bf16 embeddings and
norm weights would change the residual stream: the policy would no longer score as its reference at step 0.)

Outside a forward the parameters are DTensors (each process holds a slice); inside the root's forward they are
the gathered plain tensors, so the scorer's chunked lm_head kernel reads an ordinary weight and its gradient
reaches FSDP's reduce-scatter. Sharded checkpoints go to a folder every process writes into: on several machines
it must be on a shared filesystem.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

# a checkpoint's state/ folder keeps the sharded model and optimizer here (accelerate's own files sit beside it)
FOLDER = "fsdp"
PARAM_GROUPS = "param_groups.json"  # in FOLDER: the optimizer's hyperparameters (its tensors are in safetensors)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The modules to shard one by one: instances of the classes named in a `_no_split_modules` inside `model`."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ConfigError(f"FSDP: no decoder layer found in {type(model).__name__} (no module of the classes "
                          f"{sorted(names) or 'named by _no_split_modules'})")
    return layers


def mixed_precision_policy():
    """Parameters gathered in their own dtype, gradients reduce-scattered in fp32 (see the module docstring)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(reduce_dtype=torch.float32)


def shard(model: nn.Module, accelerator) -> nn.Module:
    """Shard `model` in place across all processes (call before building the optimizer); returns it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if accelerator.distributed_type.name in ("FSDP", "DEEPSPEED"):
        raise ConfigError("fsdp: true shards the model itself: launch plain processes (torchrun, or accelerate "
                          "launch --config_file recipes/accelerate/fsdp.yaml), not accelerate's FSDP/DeepSpeed")
    if not dist.is_initialized():
        raise ConfigError("fsdp: true needs a distributed launch: torchrun or accelerate launch")
    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    policy = mixed_precision_policy()
    model.to(accelerator.device)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=True)
    # the root's forward ends the step, so its parameters stay gathered for the backward that follows at once
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=False)
    return model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every process must call this: the gathered, plain (CPU) state dict on the main process, {} elsewhere."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    return {"model": model_state, "optimizer": optimizer_state}


def save_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Each process writes its shards of the weights and AdamW state: tensors through torch.distributed.checkpoint
    in safetensors (HuggingFaceStorageWriter: the shard offsets sit in each file's JSON header, so no pickled
    `.metadata` is written), the optimizer's hyperparameters (param_groups) as JSON from the main process."""
    import torch.distributed.checkpoint as dcp

    state = _state(model, optimizer)
    dcp.save({"model": state["model"], "optimizer": state["optimizer"]["state"]},
             storage_writer=dcp.HuggingFaceStorageWriter(str(folder), save_distributed=True))
    if dist.get_rank() == 0:
        (folder / PARAM_GROUPS).write_text(json.dumps(state["optimizer"]["param_groups"]))


def load_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Restore what save_sharded wrote into the sharded model and optimizer, in place; nothing is unpickled."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    if not (folder / PARAM_GROUPS).is_file():
        raise ConfigError(f"cannot resume from {folder}: it holds no {PARAM_GROUPS} (a sharded checkpoint of "
                          "another format, whose pickled metadata is not loaded); start over with "
                          "--overwrite_output_dir")
    state = _state(model, optimizer)
    tensors = {"model": state["model"], "optimizer": state["optimizer"]["state"]}
    dcp.load(tensors, storage_reader=dcp.HuggingFaceStorageReader(str(folder)))
    # JSON has no tuples: hyperparameters such as betas come back as lists
    groups = [{k: (v if k == "params" or not isinstance(v, list) else tuple(v)) for k, v in group.items()}
              for group in json.loads((folder / PARAM_GROUPS).read_text())]
    set_state_dict(model, optimizer, model_state_dict=tensors["model"],
                   optim_state_dict={"state": tensors["optimizer"], "param_groups": groups})
