"""GGUF for every architecture the recipes train, from tiny checkpoints with real tokenizers: Mistral and
Llama with a sentencepiece tokenizer.model (as Mistral 7B and Llama 2 ship), Gemma 3 with its real BPE
vocabulary. Converted from a relative path, reloaded in llama.cpp, and the f16 file's greedy tokens equal
transformers' float32 greedy tokens; every quantizer type is written with llama.cpp's own quantizer, and an
importance matrix steers where it spends precision."""

from __future__ import annotations

import os

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (zephyr[gguf])")
pytest.importorskip("sentencepiece", reason="sentencepiece is not installed (zephyr[gguf])")

from tests.quantize.tiny_sentencepiece import tiny_sentencepiece_checkpoint  # noqa: E402
from zephyr.quantize.cli import main  # noqa: E402
from zephyr.quantize.gguf import QUANTIZER_TYPES, quantize_file, write_gguf  # noqa: E402

PROMPT = "How do I bake bread? Mix flour"
NEW_TOKENS = 12


def checkpoint(arch: str, base):
    if arch == "gemma3":
        from tests.fixtures.tiny_gemma import tiny_gemma3_real_vocab

        return tiny_gemma3_real_vocab(base / "tiny-gemma3-real-peaked", embedding_scale=4.0)  # shared with serve
    return tiny_sentencepiece_checkpoint(arch, base / f"tiny-{arch}-sp")


def greedy_llama_cpp(path, ids: list[int]) -> list[int]:
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, verbose=False)
    try:
        out = []
        for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
            out.append(token)
            if len(out) == NEW_TOKENS:
                return out
    finally:
        llm.close()


def greedy_transformers(folder, ids: list[int]) -> list[int]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                             do_sample=False, pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mistral", "llama", "gemma3"])
def test_f16_from_relative_path_generates_like_transformers(arch, tmp_path_factory, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    folder = checkpoint(arch, tmp_path_factory.getbasetemp())
    monkeypatch.chdir(tmp_path)
    os.symlink(folder, "model")
    path, _ = write_gguf("model", "out", "f16")  # both relative: the converter runs elsewhere
    assert path == tmp_path / "out" / "model-f16.gguf" and path.is_file()
    ids = AutoTokenizer.from_pretrained(folder)(PROMPT)["input_ids"]
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    assert llm.tokenize(PROMPT.encode(), add_bos=True) == ids, "same tokenizer in the GGUF file"
    if arch != "gemma3":
        assert llm.metadata["tokenizer.ggml.model"] == "llama", "the sentencepiece vocabulary, as Llama 2's"
    llm.close()
    assert greedy_llama_cpp(path, ids) == greedy_transformers(folder, ids)


@pytest.mark.slow
def test_cli_default_output_dir_is_relative_to_where_the_user_stands(tmp_path_factory, tmp_path, monkeypatch):
    folder = checkpoint("mistral", tmp_path_factory.getbasetemp())
    monkeypatch.chdir(tmp_path)
    os.symlink(folder, "tiny-mistral")
    assert main(["gguf", "tiny-mistral", "--type", "q8_0", "--check", "false"]) == 0
    assert (tmp_path / "tiny-mistral-gguf" / "tiny-mistral-q8_0.gguf").is_file()


@pytest.fixture(scope="module")
def wide_f16(tmp_path_factory):
    """A 256-wide Llama (k-quant blocks are 256 wide, so every tensor really gets the asked type) as f16."""
    base = tmp_path_factory.mktemp("wide")
    folder = tiny_sentencepiece_checkpoint("llama", base / "tiny-llama-256", hidden=256)
    path, _ = write_gguf(folder, base, "f16")
    return folder, path


def tensor(path, name: str) -> np.ndarray:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    found = next(t for t in GGUFReader(str(path)).tensors if t.name == name)
    return dequantize(found.data, found.tensor_type), found.tensor_type.name


@pytest.mark.slow
def test_every_quantizer_type_is_written_and_reloads(wide_f16, tmp_path):
    from gguf import GGUFReader

    folder, f16 = wide_f16
    reference, _ = tensor(f16, "blk.0.ffn_up.weight")
    errors = {}
    for qtype, ftype in QUANTIZER_TYPES.items():
        out = tmp_path / f"{qtype}.gguf"
        quantize_file(f16, out, qtype, threads=2)
        field = GGUFReader(str(out)).fields["general.file_type"]
        assert int(field.parts[field.data[0]][0]) == getattr(llama_cpp, ftype), qtype
        weights, kind = tensor(out, "blk.0.ffn_up.weight")
        assert kind.lower().startswith(qtype[:2]), (qtype, kind)  # q3_k_m's ffn_up is Q3_K, q4_k_m's Q4_K ...
        errors[qtype] = float(np.abs(weights - reference).mean() / np.abs(reference).mean())
        llm = llama_cpp.Llama(model_path=str(out), n_ctx=32, logits_all=True, verbose=False)
        llm.eval([1, 5, 9])
        assert np.isfinite(np.asarray(llm.scores[:3])).all()
        llm.close()
    # more bits, less error: each family's error falls as its bits rise
    assert errors["q2_k"] > errors["q3_k_m"] > errors["q4_k_m"] > errors["q5_k_m"] > errors["q6_k"], errors
    assert errors["q4_0"] > errors["q5_0"], errors


@pytest.mark.slow
def test_importance_matrix_protects_the_columns_it_marks(wide_f16, tmp_path):
    folder, f16 = wide_f16
    reference, _ = tensor(f16, "blk.0.ffn_up.weight")
    important = np.zeros(reference.shape[1], dtype=np.float32) + 1e-3
    important[::4] = 1e3  # every 4th input column carries (almost) all of the activation energy; q2_k fits its
    # scales per 16 columns, so the marked columns share each scale with unmarked ones and the fit can favour them
    plain, guided = tmp_path / "plain.gguf", tmp_path / "guided.gguf"
    quantize_file(f16, plain, "q2_k", threads=2)
    quantize_file(f16, guided, "q2_k", threads=2, imatrix={"blk.0.ffn_up.weight": important})

    def error_on_marked(path):
        weights, _ = tensor(path, "blk.0.ffn_up.weight")
        return float(np.abs(weights - reference)[:, ::4].mean())

    assert error_on_marked(guided) < 0.7 * error_on_marked(plain), (error_on_marked(guided), error_on_marked(plain))


@pytest.mark.slow
def test_imatrix_computed_from_calibration_text_matches_hand_computed_mean_squares(wide_f16, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zephyr.quantize.imatrix import compute_imatrix

    folder, f16 = wide_f16
    texts = ["How do I bake bread? Mix flour, water, salt and yeast.", "Zephyr is a gentle west wind."]
    imatrix = compute_imatrix(folder, texts, f16, max_tokens=1000)
    layers = 2
    per_layer = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
    assert set(imatrix) == {f"blk.{i}.{n}.weight" for i in range(layers) for n in per_layer}
    # oracle: attn_q's input is layer 0's input RMS norm of the embeddings; ffn_down's is act(gate) * up
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = [i for t in texts for i in tokenizer(t)["input_ids"]]
    with torch.no_grad():
        layer = model.model.layers[1]
        hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[1][0]
        normed = layer.input_layernorm(hidden)
    np.testing.assert_allclose(imatrix["blk.1.attn_q.weight"], (normed ** 2).mean(0).numpy(), rtol=1e-4)
    # the whole text fits one window here: with a 3-token budget only the first 3 tokens count
    short = compute_imatrix(folder, texts, f16, max_tokens=3)
    with torch.no_grad():
        first = model(torch.tensor([ids[:3]]), output_hidden_states=True).hidden_states[1][0]
        expected = (layer.input_layernorm(first) ** 2).mean(0).numpy()
    np.testing.assert_allclose(short["blk.1.attn_q.weight"], expected, rtol=1e-4)


@pytest.mark.slow
def test_cli_imatrix_from_calibration_text(wide_f16, tmp_path, capsys):
    folder, _ = wide_f16
    calibration = tmp_path / "cal.txt"
    calibration.write_text("How do I bake bread? Mix flour, water, salt and yeast.\n\nZephyr is a gentle wind.\n")
    assert main(["gguf", str(folder), "--type", "q3_k_s", "--imatrix", str(calibration), "--output_dir",
                 str(tmp_path / "out"), "--check", "false"]) == 0
    assert (tmp_path / "out" / f"{folder.name}-q3_k_s.gguf").is_file()


def test_missing_imatrix_file_is_a_settings_error(tmp_path, capsys):
    assert main(["gguf", str(tmp_path), "--imatrix", str(tmp_path / "nope.dat")]) == 2
    assert "--imatrix: " + str(tmp_path / "nope.dat") + " is not a file" in capsys.readouterr().err


def test_imatrix_with_a_converter_type_is_refused(tmp_path):
    from zephyr.errors import ZephyrError

    with pytest.raises(ZephyrError, match="--imatrix guides llama.cpp's quantizer"):
        write_gguf(tmp_path, tmp_path, "q8_0", imatrix=tmp_path / "x.dat")
