"""One check for "a valid conversation ending with a user turn", shared by the pair loader, the UltraFeedback
binarizer and `zephyr generate`: same problem, same wording, field named."""

from __future__ import annotations

import pytest

from zephyr.data.binarize import prompt_messages
from zephyr.data.io import Where
from zephyr.data.schemas import pair
from zephyr.errors import DataError
from zephyr.generate import conversation

HERE = Where("in.jsonl", 3)
USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello"}


def pair_row(prompt):
    return {"prompt": prompt, "chosen": "a", "rejected": "b"}


def raw_row(messages):
    return {"instruction": "Hi", "messages": messages, "completions": []}


READERS = {
    "pair": (lambda m: pair(pair_row(m), HERE), "prompt"),
    "binarize": (lambda m: prompt_messages(raw_row(m), HERE), "messages"),
    "generate": (lambda m: conversation({"messages": m}, HERE), "messages"),
}


@pytest.mark.parametrize("reader", READERS)
def test_a_prompt_ending_with_the_assistant_is_refused_alike(reader):
    read, field = READERS[reader]
    with pytest.raises(DataError) as err:
        read([USER, ASSISTANT])
    assert str(err.value) == f"in.jsonl:3: field '{field}': the prompt must end with a user turn"


@pytest.mark.parametrize("reader", READERS)
def test_an_invalid_conversation_names_the_message(reader):
    read, field = READERS[reader]
    with pytest.raises(DataError) as err:
        read([{"role": "bot", "content": "x"}])
    assert str(err.value).startswith(f"in.jsonl:3: field '{field}[0].role': message 0 has unknown role 'bot'")


@pytest.mark.parametrize("reader", READERS)
def test_a_valid_prompt_passes_whole(reader):
    read, _ = READERS[reader]
    messages = [{"role": "system", "content": "Be brief."}, USER, ASSISTANT, {"role": "user", "content": "More?"}]
    out = read(messages)
    assert (out["prompt"] if reader == "pair" else out) == messages
