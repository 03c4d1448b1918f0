"""GGUF round trips on a tiny Gemma 3 (real vocabulary, random weights): write, reload in llama.cpp, compare.

Bounds: llama.cpp's f16 forward matches transformers' float32 logits to 3% of their spread, and the
perplexity delta written to the table stays within 1% for f16 and q8_0 (the dims of a 64-wide model are
not multiples of 256, so llama.cpp stores its q4_k_m tensors as q8_0/q5 fallbacks: same 1% bound).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (zephyr[gguf])")

from zephyr.chat_template import JINJA, render_text  # noqa: E402
from zephyr.quantize.cli import main  # noqa: E402
from zephyr.quantize.gguf import write_gguf  # noqa: E402

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a zephyr?"}]


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    from tests.fixtures.tiny_gemma import tiny_gemma3_real_vocab

    return tiny_gemma3_real_vocab(tmp_path_factory.getbasetemp() / "tiny-gemma3-real")  # shared with tests/serve


@pytest.mark.slow
def test_q8_0_written_checked_and_recorded(tiny_gemma, tmp_path, capsys):
    out = tmp_path / "gguf"
    assert main(["gguf", str(tiny_gemma), "--type", "q8_0", "--output_dir", str(out), "--eval_tokens", "300",
                 "--window", "128"]) == 0
    path = out / f"{tiny_gemma.name}-q8_0.gguf"
    assert path.is_file()
    rows = json.loads((out / "quantization.json").read_text())
    assert [r["version"] for r in rows] == ["gguf-q8_0"]
    assert abs(rows[0]["delta_percent"]) < 1.0, rows[0]
    assert rows[0]["reference_perplexity"] > 1.0
    printed = capsys.readouterr().out
    assert "| gguf-q8_0 |" in printed and "llama.cpp reloaded" in printed
    for card in (out / "README.md", tiny_gemma / "README.md"):  # output dir and the model's own card
        assert "## Quantized versions" in card.read_text() and "gguf-q8_0" in card.read_text()
    # the file carries zephyr's template, and llama.cpp's own chat formatter renders exactly our text
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    assert llm.metadata["tokenizer.chat_template"] == JINJA["zephyr"]
    formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token="<eos>", bos_token="<bos>")
    rendered = render_text(MESSAGES, "zephyr", "<bos>", "<eos>", add_generation_prompt=True).text
    assert formatter(messages=MESSAGES).prompt == rendered
    llm.close()


@pytest.mark.slow
def test_f16_logits_match_transformers(tiny_gemma, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, template = write_gguf(tiny_gemma, tmp_path, "f16", "auto")
    assert template == "zephyr"
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma)
    ids = tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"]
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False)
    assert llm.tokenize(b"The quick brown fox jumps over the lazy dog.", add_bos=True) == ids  # same vocabulary
    llm.eval(ids)
    ours = np.asarray(llm.scores[: len(ids)])
    llm.close()
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma, dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(ours - theirs).max() < 0.03 * theirs.std()  # f16 weights, f16 KV cache
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() > 0.9


@pytest.mark.slow
def test_q4_k_m_goes_through_llama_cpp_quantizer(tiny_gemma, tmp_path):
    path, _ = write_gguf(tiny_gemma, tmp_path, "q4_k_m", "zephyr")
    # llama.cpp reads the header in a second; gguf's GGUFReader takes half a minute over a 262k vocabulary
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    assert int(llm.metadata["general.file_type"]) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    llm.close()
    assert not list(tmp_path.glob("*f16*")) and not list(tmp_path.glob(".staging-*")), "no leftovers"


def test_unknown_type_is_a_user_error(tiny_gemma, tmp_path):
    from zephyr.errors import ZephyrError

    with pytest.raises(ZephyrError, match="unknown GGUF type"):
        write_gguf(tiny_gemma, tmp_path, "q3_fancy")
