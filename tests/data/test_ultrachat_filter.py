"""UltraChat clean-up: what each rule removes on hand-made dialogues, truncation, truecasing."""

from __future__ import annotations

from collections import Counter

import pytest

from zephyr.data import DataConfig, filter_dialogue, load_chat_splits, truecase
from zephyr.data.ultrachat_filter import is_disclaimer


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


@pytest.mark.parametrize("text", [
    "As an AI language model, I do not have personal opinions on this.",
    "I'm just an AI, so I cannot say.",
    "I don't have emotions, but here is a summary.",
    "I have no personal preferences when it comes to music.",
    "I am not capable of feeling sadness.",
    "as an artificial intelligence, i cannot taste food.",
])
def test_disclaimers_are_recognised(text):
    assert is_disclaimer(text)


@pytest.mark.parametrize("text", [
    "AI language models are trained on large corpora.",
    "The patient had no emotions visible on her face.",
    "Many people have opinions about pineapple on pizza.",
    "I think the answer is 42.",
])
def test_ordinary_replies_are_kept(text):
    assert not is_disclaimer(text)


@pytest.mark.parametrize("raw, cased", [
    ("hello there. this is fine! is it? yes.", "Hello there. This is fine! Is it? Yes."),
    ("i think i'm right, and i've checked. as did i.", "I think I'm right, and I've checked. As did I."),
    ("see e.g. the docs. then stop.", "See e.g. the docs. Then stop."),
    ("use `os.path` here. numpy.array works.", "Use `os.path` here. numpy.array works."),
    ("```\nx = 1. y = 2\n```\nthen run it.", "```\nx = 1. y = 2\n```\nThen run it."),
    ("pi is 3.14 and more... or less.", "Pi is 3.14 and more... or less."),
    ("first line.\n\nsecond para", "First line.\n\nSecond para"),
    ("Already Fine. Really.", "Already Fine. Really."),
])
def test_truecasing(raw, cased):
    assert truecase(raw) == cased


def test_each_rule_on_hand_made_dialogues():
    dialogues = [
        [],                                                                   # empty
        [u("  "), a("")],                                                     # empty (all blank)
        [u("Only a question?")],                                              # one-sided
        [a("Talking to myself."), a("Again.")],                               # one-sided
        [u("How do you feel?"), a("As an AI language model, I have no feelings.")],  # nothing left
        [u("Tell me about Rome."), a("Rome is old."), u("Do you like it?"),
         a("I don't have personal opinions, but many do."), u("Ok, and Paris?"), a("Paris too.")],  # truncated
        [u("Hi."), a("Hello."), u("Anything else?"), a("   ")],               # blank turn, truncated
        [u("what is 2+2?"), a("it is 4. nice, right?")],                      # kept, truecased twice
        [u("Write a haiku."), a("Leaves fall."), u("Thanks!")],               # trailing user turn removed
        [{"role": "system", "content": ""}, u("Q?"), a("A.")],              # blank system removed
    ]
    counts = Counter()
    kept = [filter_dialogue(d, counts) for d in dialogues]
    assert [k is not None for k in kept] == [False, False, False, False, False, True, True, True, True, True]
    assert kept[5] == [u("Tell me about Rome."), a("Rome is old.")]
    assert kept[6] == [u("Hi."), a("Hello.")]
    assert kept[7] == [u("What is 2+2?"), a("It is 4. Nice, right?")]
    assert kept[8] == [u("Write a haiku."), a("Leaves fall.")]
    assert kept[9] == [u("Q?"), a("A.")]
    assert counts == Counter(filter_dialogues=10, filter_empty=2, filter_one_sided=2, filter_disclaimer_turns=2,
                             filter_blank_turns=1, filter_truncated=3, filter_nothing_left=1,
                             filter_trailing_user_turn=1, filter_truecased_turns=2, filter_kept=5)
    assert dialogues[7] == [u("what is 2+2?"), a("it is 4. nice, right?")]  # the input is not modified


def test_filter_in_the_loader_counts_and_validates(make, tmp_path):
    rows = [make.chat(i) for i in range(6)]
    rows[1]["messages"][1]["content"] = "As an AI, I don't have feelings."
    rows[2]["messages"] = [rows[2]["messages"][0]]
    rows[3]["messages"][0]["content"] = "lowercase start. and more"
    path = make.write(tmp_path / "uc.jsonl", rows)
    cfg = DataConfig(dataset_mixer={str(path): 1.0}, chat_filter=True, test_split_size=0)
    splits = load_chat_splits(cfg)
    counts = splits.report[str(path)]
    assert len(splits.train) == 4 and counts["train"] == 4
    assert counts["dropped_by_rules"] == 2 and counts["filter_nothing_left"] == 1 and counts["filter_one_sided"] == 1
    assert counts["filter_truecased_turns"] == 1
    assert [u("Lowercase start. And more"), a("Answer 3.0.")] in splits.train
    # without the filter the one-sided dialogue is a DataError, not a silent drop
    with pytest.raises(Exception, match=r"uc\.jsonl:3: field 'messages'"):
        load_chat_splits(DataConfig(dataset_mixer={str(path): 1.0}))


@pytest.mark.parametrize("text", [
    'The vowels are "a", "e", "i", "o" and "u".',  # a quoted letter is not the pronoun
    "Loop with for i in range(3) and set i = 0.",   # nor is a loop variable
    'He said "Stop." and left.',                    # a quoted sentence inside a sentence
    "Storms (ex. rain, snow) happen.",              # abbreviation after a bracket
    "Each element TP(i, j) uses inputs i,j here.",  # arguments and pairs
])
def test_truecasing_leaves_look_alikes(text):
    assert truecase(text) == text
