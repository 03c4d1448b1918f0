"""The embedded demo data: loads, renders, keeps train and test apart, states only correct arithmetic, follows
(chosen) or breaks (rejected) the verifiable instructions it asks for, shares nothing with IFEval, MT-Bench or
AlpacaEval prompts, and is exactly what scripts/make_demo_data.py produces."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from zephyr.chat_template import render_text, validate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "zephyr" / "demo_data"
SIZES = {"sft_train": (1100, 1180), "sft_test": (50, 70), "pairs_train": (380, 460), "pairs_test": (90, 110)}
SHARED = ROOT.parent / "shared" / "data"
# Every computed claim in the data is written `a op b [op c ...] = result`, spaces around each operator.
EQUATION = re.compile(r"(\d+(?: [-+×÷] \d+)+) = (\d+)")


def load(name: str) -> list[dict]:
    with open(DATA / f"{name}.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def instruction_prompts(name: str) -> set[str]:
    """The user requests with verifiable constraints in a file (listed in instruction_checks.jsonl)."""
    return {row["prompt"] for row in load("instruction_checks") if row["file"] == name}


def dialogues(name: str) -> list[dict]:
    """The short helpful/harmless rows of a file (not the instruction-following ones)."""
    asks = instruction_prompts(name)
    key = "messages" if name.startswith("sft") else "prompt"
    return [row for row in load(name) if not any(m["content"] in asks for m in row[key] if m["role"] == "user")]


def replies(name: str) -> list[str]:
    """The good replies of a file: every assistant turn of an SFT file, the chosen of a pairs file."""
    if name.startswith("sft"):
        return [m["content"] for row in load(name) for m in row["messages"] if m["role"] == "assistant"]
    return [row["chosen"] for row in load(name)]


def evaluate(expression: str) -> Fraction:
    """Evaluate `a op b op c` with the usual precedence (× ÷ before + -), exactly."""
    tokens = expression.split()
    terms: list[Fraction] = [Fraction(tokens[0])]
    signs: list[int] = [1]
    for op, number in zip(tokens[1::2], tokens[2::2]):
        value = Fraction(number)
        if op == "×":
            terms[-1] *= value
        elif op == "÷":
            terms[-1] /= value
        else:
            terms.append(value)
            signs.append(1 if op == "+" else -1)
    return sum((s * t for s, t in zip(signs, terms)), Fraction(0))


def equations(texts: list[str]) -> list[tuple[str, int, Fraction]]:
    return [(left, int(right), evaluate(left)) for text in texts for left, right in EQUATION.findall(text)]


def test_evaluate_follows_precedence():
    assert evaluate("20 × 9 ÷ 5 + 32") == 68
    assert evaluate("77 - 32") == 45
    assert evaluate("2 + 3 × 4") == 14
    assert evaluate("45 × 5 ÷ 9") == 25


@pytest.mark.parametrize("name", list(SIZES))
def test_file_sizes(name):
    low, high = SIZES[name]
    assert low <= len(load(name)) <= high


@pytest.mark.parametrize("name", ["sft_train", "sft_test"])
def test_sft_conversations_are_valid_and_short(name):
    for index, row in enumerate(load(name)):
        validate(row["messages"], index, require_assistant_last=True)
    rows = dialogues(name)
    for index, row in enumerate(rows):
        assert list(row) == ["messages"]
        validate(row["messages"], index, require_assistant_last=True)
        render_text(row["messages"], "chatml", "<bos>", "<eos>")  # renders under both templates
        for message in row["messages"]:
            if message["role"] == "assistant":
                assert len(message["content"].split()) < 60, message["content"]
    two_turn = sum(sum(m["role"] == "user" for m in row["messages"]) == 2 for row in rows) / len(rows)
    with_system = sum(row["messages"][0]["role"] == "system" for row in rows) / len(rows)
    assert 0.1 <= two_turn <= 0.3 and 0.03 <= with_system <= 0.2
    assert all(sum(m["role"] == "user" for m in row["messages"]) <= 2 for row in rows)


@pytest.mark.parametrize("name", ["pairs_train", "pairs_test"])
def test_pairs_are_valid(name):
    for index, row in enumerate(load(name)):
        assert list(row) == ["prompt", "chosen", "rejected"]
        assert row["prompt"][-1]["role"] == "user"
        for reply in (row["chosen"], row["rejected"]):
            assert isinstance(reply, str) and reply.strip()
            validate(row["prompt"] + [{"role": "assistant", "content": reply}], index, require_assistant_last=True)
        assert row["chosen"].strip() != row["rejected"].strip()


def test_replies_are_varied():
    for name in ("sft_train", "pairs_train"):
        texts = replies(name)
        assert len(set(texts)) / len(texts) > 0.85
    rejected = [row["rejected"] for row in load("pairs_train")]
    assert sum(r in ("I don't know.", "No idea.", "Not sure.", "Dunno.", "No.", "Can't help.") for r in rejected) < 60


def questions(name: str) -> set[str]:
    """Every user turn of a file, except the short greetings that open some conversations in both splits."""
    return {m["content"] for row in load(name) for m in row.get("messages", row.get("prompt"))
            if m["role"] == "user" and m["content"] not in GREETINGS}


GREETINGS = {"Hi there!", "Hello, can I ask you something?", "Good morning!", "Hey, I have a quick question."}
FOLLOW_UPS = {"Now double that.", "What's double that?", "And if I double it?", "Now add 10 to that.",
              "What if I add 10?", "And plus 10?", "Can you give an example?", "What's an example?",
              "Could you show me an example?", "Any tips?", "Anything else I should know?",
              "Got a tip to make it easier?", "Which continent is it in?", "And what continent is that on?",
              "Which continent is that in?"}


def test_train_and_test_prompts_are_disjoint():
    # Follow-up questions are generic ("Any tips?"); what they follow is held out, so compare the rest.
    for test in ("sft_test", "pairs_test"):
        for train in ("sft_train", "pairs_train"):  # test questions are unseen by SFT and by DPO
            assert not (questions(test) - FOLLOW_UPS) & questions(train), (test, train)
    for kind in ("sft", "pairs"):
        key = "messages" if kind == "sft" else "prompt"
        prompts = lambda name: {json.dumps(row[key][:-1] if kind == "sft" else row[key])  # noqa: E731
                                for row in load(name)}
        assert not prompts(f"{kind}_train") & prompts(f"{kind}_test")


@pytest.mark.parametrize("name", list(SIZES))
def test_arithmetic_in_good_replies_is_correct(name):
    found = equations(replies(name))
    assert len(found) >= len(dialogues(name)) // 5  # arithmetic, conversions and word problems are a big share
    wrong = [(left, right) for left, right, value in found if value != right]
    assert not wrong


@pytest.mark.parametrize("name", ["pairs_train", "pairs_test"])
def test_arithmetic_in_rejected_replies_is_wrong(name):
    found = equations([row["rejected"] for row in load(name)])
    assert len(found) >= 5  # wrong sums are one of the ways a rejected reply is worse
    assert all(value != right for _, right, value in found)


@pytest.mark.slow
def test_script_reproduces_committed_files(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_data.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in [*SIZES, "instruction_checks"]:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (DATA / f"{name}.jsonl").read_bytes(), name


@pytest.mark.parametrize("name", list(SIZES))
def test_instruction_rows_are_a_real_share_with_realistic_length(name):
    asks = instruction_prompts(name)
    assert 0.35 <= len(asks) / len(load(name)) <= (0.85 if name == "sft_train" else 0.65)
    if name.startswith("pairs"):
        lengths = [len(row["chosen"].split()) for row in load(name) if row["prompt"][-1]["content"] in asks]
    else:
        lengths = [len(row["messages"][-1]["content"].split()) for row in load(name)
                   if row["messages"][0]["content"] in asks]
    assert len(lengths) == len(asks) and 60 <= sum(lengths) / len(lengths) <= 150 and max(lengths) >= 150


def test_instruction_replies_are_verified_with_ifevals_checkers():
    """Chosen replies (and SFT replies) follow every constraint of their request; rejected ones break one."""
    pytest.importorskip("if_verifiable")
    from zephyr.eval import ifeval

    checks = load("instruction_checks")
    kinds = {i for row in checks for i in row["instruction_id_list"]}
    assert len(kinds) >= 20  # length, format, keywords, case, quotation, postscript, language, ...
    assert "language:response_language" in kinds and "detectable_format:json_format" in kinds
    replies_of = {}
    for name in SIZES:
        for row in load(name):
            if name.startswith("sft"):
                replies_of[row["messages"][0]["content"]] = (row["messages"][-1]["content"], None)
            else:
                replies_of[row["prompt"][-1]["content"]] = (row["chosen"], row["rejected"])
    for row in checks:
        good, bad = replies_of[row["prompt"]]
        assert all(i["strict"] for i in ifeval.check(row, good)), (row, good)
        if bad is not None:
            assert not all(i["loose"] for i in ifeval.check(row, bad)), (row, bad)


def test_requested_words_and_end_phrases_come_from_the_request():
    """A required keyword, a word to repeat or an end phrase that the topic's prose already holds teaches nothing:
    the reply has to take it from the request, as with IFEval's freely chosen keywords and end phrases."""
    spec = importlib.util.spec_from_file_location("demo_data_topics", ROOT / "scripts" / "demo_data_topics.py")
    topics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(topics)
    asked = 0
    for row in load("instruction_checks"):
        name, _, sentences = next(t for t in topics.TOPICS if t[0] in row["prompt"])
        prose = " ".join(sentences).lower()
        for kind, kwargs in zip(row["instruction_id_list"], row["kwargs"]):
            words = {"keywords:existence": kwargs.get("keywords", []), "keywords:frequency": [kwargs.get("keyword")],
                     "startend:end_checker": [kwargs.get("end_phrase")]}.get(kind, [])
            for word in words:
                asked += 1
                assert word.lower() in row["prompt"].lower(), (row, word)
                assert not re.search(rf"\b{re.escape(word.lower())}\b", prose), (name, word)
    assert asked >= 300


def test_repeat_requests_repeat_everything_but_the_repeat_instruction():
    """'Repeat my request' means the whole request (every other constraint too), as IFEval asks it, and the
    repeat instruction is the last sentence."""
    rows = [row for row in load("instruction_checks") if "combination:repeat_prompt" in row["instruction_id_list"]]
    assert len(rows) >= 30 and sum(len(row["instruction_id_list"]) > 1 for row in rows) >= 10
    for row in rows:
        repeated = row["kwargs"][row["instruction_id_list"].index("combination:repeat_prompt")]["prompt_to_repeat"]
        rest = row["prompt"][len(repeated):]
        assert row["prompt"].startswith(repeated) and rest[:1] in (" ", "\n"), row
        assert "repeat" in rest.lower() or "echo" in rest.lower() or "copy" in rest.lower(), row
        assert rest.strip().count(". ") == 0 and rest.strip().endswith("."), row  # one sentence


def test_instruction_requests_do_not_reuse_ifeval_prompts():
    ifeval_prompts = {json.loads(line)["prompt"] for line in open(SHARED / "ifeval" / "input_data.jsonl")}
    assert not ifeval_prompts & {row["prompt"] for row in load("instruction_checks")}


@pytest.mark.parametrize("name", list(SIZES))
def test_decontaminate_finds_nothing(name, tmp_path):
    """`zephyr data decontaminate` against IFEval, MT-Bench and AlpacaEval keeps every row of the shipped data."""
    from zephyr.data.cli import main

    evals = [SHARED / "ifeval" / "input_data.jsonl", SHARED / "mt_bench" / "question.jsonl",
             SHARED / "alpaca_eval" / "alpaca_eval_v1_reference.derived.json"]
    out = tmp_path / f"{name}.jsonl"
    assert main(["decontaminate", str(DATA / f"{name}.jsonl"), str(out), "--eval", *map(str, evals)]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == (DATA / f"{name}.jsonl").read_text(
        encoding="utf-8").splitlines()


def test_package_declares_the_data():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "demo_data/*.jsonl" in pyproject
    assert (DATA / "README.md").exists()
