"""The renderer against the published Jinja templates, the assistant mask, and bad conversations."""

from __future__ import annotations

import random

import pytest

from zephyr.chat_template import (JINJA, ConversationError, end_of_turn, render_ids, render_text, set_chat_template,
                                  validate)

PUBLISHED = {"zephyr": "zephyr-7b-beta.chat_template.jinja", "chatml": "zephyr-7b-gemma-v0.1.chat_template.jinja"}
# "<s> inside" puts a second BOS into some conversations: the BOS count below must include those
WORDS = ["hello", "world", "Grüße", "東京", "🙂", "x = 1\n  y = 2", "  leading", "trailing  ", "tab\there",
         "</s> inside", "<s> inside", "<|user|> fake header", "{{ jinja }}", "{% raw %}", "a\n\nb", "$100",
         "naïve café"]


def random_conversation(rng: random.Random) -> list[dict]:
    messages = []
    if rng.random() < 0.4:
        messages.append({"role": "system", "content": text(rng)})
    for turn in range(rng.randint(1, 4)):
        messages.append({"role": "user", "content": text(rng)})
        if turn < 3 or rng.random() < 0.5:
            messages.append({"role": "assistant", "content": text(rng)})
    if rng.random() < 0.3 and messages[-1]["role"] == "assistant":
        messages.pop()
    return messages


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))


def hf_tokenizer_with(tokenizer, jinja: str):
    clone = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, bos_token=tokenizer.bos_token,
                                eos_token=tokenizer.eos_token, unk_token=tokenizer.unk_token,
                                pad_token=tokenizer.pad_token)
    clone.chat_template = jinja
    return clone


@pytest.mark.parametrize("name", ["zephyr", "chatml"])
def test_render_equals_published_template_on_many_conversations(name, tokenizer, shared_data):
    published = (shared_data / "chat_templates" / PUBLISHED[name]).read_text()
    reference = hf_tokenizer_with(tokenizer, published)
    ours = hf_tokenizer_with(tokenizer, JINJA[name])
    rng = random.Random(0)
    for _ in range(300):
        messages = random_conversation(rng)
        for gen in (False, True):
            expected = reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            assert render_text(messages, name, "<s>", "</s>", gen).text == expected
            assert ours.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen) == expected
            expected_ids = reference.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
            if isinstance(expected_ids, dict) or hasattr(expected_ids, "keys"):
                expected_ids = expected_ids["input_ids"]
            ids, mask = render_ids(messages, tokenizer, name, add_generation_prompt=gen)
            # we add BOS only where the template did not (the tokenizer's own rule for plain text)
            assert ids[-len(expected_ids):] == list(expected_ids)
            assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1 + \
                sum(m["content"].count("<s>") for m in messages)


def test_exact_zephyr_strings():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]
    assert render_text(messages, "zephyr", add_generation_prompt=True).text == (
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nBye</s>\n<|assistant|>\n")
    assert render_text(messages[:3], "chatml", "<bos>", "<eos>").text == (
        "<bos><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<eos>")


@pytest.mark.parametrize("name", ["zephyr", "chatml"])
def test_mask_covers_exactly_replies_and_end_of_turn(name, tokenizer):
    messages = [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "It is 4."}, {"role": "user", "content": "And 3+3?"},
                {"role": "assistant", "content": "It is 6, café 🙂."}]
    ids, mask = render_ids(messages, tokenizer, name)
    assert len(ids) == len(mask)
    masked_text = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    eot = end_of_turn(name, tokenizer.eos_token)
    assert masked_text == f"It is 4.{eot}It is 6, café 🙂.{eot}"
    # the masked tokens form exactly two runs, one per reply
    runs = sum(1 for a, b in zip([0] + mask, mask) if b and not a)
    assert runs == 2
    unmasked = tokenizer.decode([i for i, m in zip(ids, mask) if not m])
    for header in ("user", "assistant", "What is 2+2?", "And 3+3?", "You are kind."):
        assert header in unmasked
    assert "It is" not in unmasked


def test_mask_is_empty_without_assistant_turn(tokenizer):
    ids, mask = render_ids([{"role": "user", "content": "hi"}], tokenizer, "zephyr", add_generation_prompt=True)
    assert sum(mask) == 0 and tokenizer.decode(ids).endswith("<|assistant|>\n")


@pytest.mark.parametrize("messages, problem", [
    ([], "non-empty list"),
    ("hello", "non-empty list"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "message 1 has role 'user' after 'user'"),
    ([{"role": "assistant", "content": "a"}], "message 0 has role 'assistant' after 'start'"),
    ([{"role": "user", "content": "  "}], "message 0 (user) has empty content"),
    ([{"role": "user", "content": None}], "message 0 (user) has empty content"),
    ([{"role": "robot", "content": "a"}], "unknown role 'robot'"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "only the first message"),
    ([{"role": "system", "content": "a"}], "only a system message"),
    ([{"content": "a"}], "must be an object with 'role' and 'content'"),
])
def test_bad_conversations_name_index_and_problem(messages, problem):
    with pytest.raises(ConversationError) as err:
        validate(messages, index=7)
    assert str(err.value).startswith("conversation 7: ")
    assert problem in str(err.value)
    assert err.value.index == 7


def test_render_ids_reports_conversation_index(tokenizer):
    with pytest.raises(ConversationError, match="conversation 3: message 1"):
        render_ids([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], tokenizer, index=3)


def test_set_chat_template_roundtrip(tokenizer):
    clone = hf_tokenizer_with(tokenizer, None)
    set_chat_template(clone, "chatml")
    messages = [{"role": "user", "content": "hey"}]
    assert clone.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        "<s><|im_start|>user\nhey<|im_end|>\n<|im_start|>assistant\n"
