"""The trainer's speed options, checked on the CPU: torch.compile of the decoder layers (flag, wiring, same loss
and gradients), fused AdamW on CUDA (same step as the unfused one), gradient checkpointing per decoder layer."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from zephyr.train import TokenScorer, TrainConfig, Trainer, Tokenized, collate_rows
from zephyr.train.fsdp import decoder_layers
from zephyr.train.trainer import adamw, compile_layers, enable_checkpointing


def _batch():
    examples = [Tokenized(list(range(4, 30)), [0] * 10 + [1] * 16), Tokenized(list(range(5, 25)), [0] * 5 + [1] * 15),
                Tokenized(list(range(7, 19)), [0] * 4 + [1] * 8)]
    return examples, collate_rows([[0, 1], [2]], examples, pad_id=0)


def _loss_and_grads(model, batch):
    model.train()
    logps, _ = TokenScorer(model)(batch["input_ids"], batch["position_ids"], batch["target_index"],
                                  batch["target_ids"], segments=batch["segments"])
    loss = -logps.sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_compile_layers_wraps_every_decoder_layer_in_place(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("gemma3"), dtype=torch.float32)
    names = [n for n, _ in model.named_parameters()]
    compile_layers(model)
    layers = decoder_layers(model)
    assert len(layers) == model.config.num_hidden_layers and all(layer._compiled_call_impl for layer in layers)
    assert not model.model.embed_tokens._compiled_call_impl  # the layers only
    assert [n for n, _ in model.named_parameters()] == names  # checkpoints keep their keys


@pytest.mark.slow
def test_the_compile_flag_reaches_the_layers(tmp_path, tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.float32)
    examples, _ = _batch()
    names = [n for n, _ in model.named_parameters()]
    assert not any(layer._compiled_call_impl for layer in decoder_layers(model))
    Trainer(TrainConfig(output_dir=str(tmp_path), compile=True, report_to=["none"], progress_bar=False),
            TokenScorer(model), lambda m, b: None, [[[0]]], lambda item: collate_rows(item, examples, 0))
    assert all(layer._compiled_call_impl for layer in decoder_layers(model))
    assert [n for n, _ in model.named_parameters()] == names


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_compiled_layers_give_the_same_loss_and_gradients(arch, tiny_model_dir):
    """Dynamo captures the layers around the packed-attention call (a graph break); aot_eager replays the captured
    forward and backward graphs without inductor's C++ build, which takes minutes on a small CPU."""
    _, batch = _batch()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch), dtype=torch.float32)
    compiled = copy.deepcopy(model)
    torch._dynamo.reset()
    compile_layers(compiled, backend="aot_eager")
    want_loss, want = _loss_and_grads(model, batch)
    got_loss, got = _loss_and_grads(compiled, batch)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # something was captured and compiled
    torch.testing.assert_close(got_loss, want_loss, atol=1e-5, rtol=1e-5)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-4)


def test_fused_adamw_takes_the_plain_adamw_step():
    config = TrainConfig(learning_rate=1e-2, weight_decay=0.1, report_to=["none"])
    torch.manual_seed(0)
    weights = [torch.randn(5, 3), torch.randn(7)]
    grads = [torch.randn_like(w) for w in weights]

    def three_steps(make):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        optimizer = make([{"params": params, "weight_decay": config.weight_decay}])
        for _ in range(3):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            optimizer.step()
        return optimizer, params

    plain = three_steps(lambda groups: torch.optim.AdamW(groups, lr=config.learning_rate, foreach=False))[1]
    for device in ("cuda", "cpu"):  # the fused kernel runs on CPU tensors too, so the CUDA choice is checked here
        optimizer, fused = three_steps(lambda groups: adamw(groups, config, torch.device(device)))
        assert optimizer.defaults["fused"]
        for got, want, start in zip(fused, plain, weights):
            assert (got - start).abs().max() > 1e-3  # it moved
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_checkpointing_recomputes_each_decoder_layer(tiny_model_dir):
    _, batch = _batch()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama", layers=3), dtype=torch.float32)
    enable_checkpointing(model)
    calls = []
    for i, layer in enumerate(decoder_layers(model)):  # module hooks do not fire in the recomputation: count calls
        layer.mlp.forward = lambda *args, i=i, run=layer.mlp.forward: calls.append(i) or run(*args)
    model.train()
    logps, _ = TokenScorer(model)(batch["input_ids"], batch["position_ids"], batch["target_index"],
                                  batch["target_ids"], segments=batch["segments"])
    assert calls == [0, 1, 2]
    (-logps.sum()).backward()
    assert sorted(calls) == [0, 0, 1, 1, 2, 2]  # each layer ran once more, alone, in the backward pass
