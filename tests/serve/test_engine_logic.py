"""Engine-independent server logic: stop strings, token limits, engine choice. Pure, fast."""

from __future__ import annotations

import importlib.util

import pytest

from zephyr.sampling import Sampling
from zephyr.serve.engine import StopScanner, check_limits
from zephyr.serve.engine_choice import choose
from zephyr.serve.protocol import ApiError, parse_chat


def scan(stops, pieces):
    scanner, out = StopScanner(stops), []
    for piece in pieces:
        text, stopped = scanner.feed(piece)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + scanner.flush(), False


def test_stop_string_split_across_pieces_is_held_back_then_cut():
    scanner = StopScanner(["###"])
    assert scanner.feed("Hello #") == ("Hello ", False)  # '#' might begin the stop string: held
    assert scanner.feed("#") == ("", False)
    assert scanner.feed("# tail") == ("", True)


def test_false_alarm_is_released():
    assert scan(["###"], ["a #", "# b", " c"]) == ("a ## b c", False)


def test_earliest_of_several_stops_wins():
    assert scan(["x", "END"], ["abc END x"]) == ("abc ", True)  # END comes first in the text
    assert scan(["END", "b"], ["abc END"]) == ("a", True)


def test_limits():
    assert check_limits(10, None, 100, 50) == 50  # default: as much as allowed
    assert check_limits(90, None, 100, 50) == 10  # ... but never past the context
    assert check_limits(10, 90, 100, 100) == 90  # exactly full is fine
    with pytest.raises(ApiError) as err:
        check_limits(10, 91, 100, 100)
    assert err.value.code == "context_length_exceeded" and err.value.status == 400
    with pytest.raises(ApiError) as err:
        check_limits(10, 51, 100, 50)
    assert err.value.code == "max_tokens_exceeded"
    with pytest.raises(ApiError) as err:
        check_limits(100, 1, 100, 50)
    assert err.value.code == "context_length_exceeded"


def test_card_defaults_fill_missing_sampling_fields():
    defaults = Sampling(temperature=0.7, top_k=50, top_p=0.95)
    chat = parse_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, defaults)
    assert (chat.sampling.temperature, chat.sampling.top_p, chat.sampling.top_k) == (0.7, 0.95, 50)
    chat = parse_chat({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                       "temperature": 0, "top_k": -1, "stop": "x", "max_completion_tokens": 5}, defaults)
    assert (chat.sampling.temperature, chat.sampling.top_k, chat.stop, chat.max_tokens) == (0, 0, ["x"], 5)
    assert chat.messages == [{"role": "user", "content": "hi"}]


def test_auto_engine_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path))  # no vLLM environment there
    engine, reason = choose(str(tmp_path / "model"))
    assert engine == "transformers" and "vLLM is not set up" in reason
    gguf = tmp_path / "m.gguf"
    has_llama = importlib.util.find_spec("llama_cpp") is not None
    assert choose(str(gguf))[0] == ("llama.cpp" if has_llama else "transformers")
    with pytest.raises(ValueError, match=".gguf files|not installed"):
        choose(str(tmp_path / "model"), "llama.cpp")
    with pytest.raises(ValueError, match="not installed"):
        choose(str(tmp_path / "model"), "vllm")
    with pytest.raises(ValueError, match="unknown engine"):
        choose(str(gguf), "tgi")


def test_cli_rejects_bad_arguments_without_traceback(tmp_path):
    from zephyr.cli import main

    assert main(["serve", str(tmp_path / "missing.gguf")]) == 2
    assert main(["serve", "embedded", "--engine", "tgi"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port: must be between 0 and 65535, got 70000"),
    (["--port", "-1"], "--port: must be between 0 and 65535"),
    (["--max_num_seqs", "0"], "--max_num_seqs: must be between 1 and 4096, got 0"),
    (["--kv_cache_tokens", "0"], "--kv_cache_tokens: must be between 1"),
    (["--max_tokens_limit", "0"], "--max_tokens_limit: must be between 1"),
    (["--context_length", "-5"], "--context_length: must be between 0"),
    (["--threads", "-1"], "--threads: must be between 0"),
    (["--top_k", "-1"], "--top_k: must be between 0"),
    (["--temperature", "-1"], "--temperature: must be between 0 and 2"),
    (["--top_p", "0"], "--top_p: must be in (0, 1]"),
    (["--top_p", "1.5"], "--top_p: must be in (0, 1]"),
    (["--log_level", "loud"], "--log_level: must be one of"),
])
def test_serve_settings_are_checked_before_anything_loads(args, message, capsys):
    from zephyr.cli import main

    assert main(["serve", "embedded", *args]) == 2
    assert message in capsys.readouterr().err


def test_checkpoint_template_renders_the_prompt_as_training_does(tiny_model_dir, tmp_path):
    """A Llama-2 [INST] checkpoint is served with its own template: the same ids as apply_chat_template."""
    from tests.test_models import LLAMA2_TEMPLATE, TWO_TURNS, checkpoint_with_template
    from zephyr.serve.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(checkpoint_with_template(tiny_model_dir, tmp_path, LLAMA2_TEMPLATE)), "tiny")
    assert engine.template == "checkpoint"
    prompt = engine.chat_prompt(TWO_TURNS[:2])
    expected = engine.tokenizer.apply_chat_template(TWO_TURNS[:2], tokenize=True, add_generation_prompt=True,
                                                    return_dict=True)["input_ids"]
    assert prompt.ids == list(expected)
    assert prompt.text.startswith("<s>[INST] <<SYS>>\nAnswer briefly.") and prompt.text.endswith("[/INST]")
    assert engine.chat_stop_ids() == [engine.tokenizer.eos_token_id]


def test_llamacpp_template_choice_refuses_a_template_it_cannot_render():
    from zephyr.chat_template import JINJA
    from zephyr.errors import ConfigError
    from zephyr.serve.llamacpp_engine import template_in

    assert template_in({}, "auto") == "zephyr"
    assert template_in({"tokenizer.chat_template": JINJA["chatml"]}, "auto") == "chatml"
    assert template_in({"tokenizer.chat_template": "{{ '[INST]' }}"}, "zephyr") == "zephyr"  # asked for by name
    for requested in ("auto", "checkpoint"):
        with pytest.raises(ConfigError, match="--engine transformers"):
            template_in({"tokenizer.chat_template": "{{ '[INST]' }}"}, requested)
