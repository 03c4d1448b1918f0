#!/usr/bin/env python
"""Generate the small, original demo data shipped in zephyr/demo_data (SFT dialogues and DPO preference pairs).

Everything comes from the fact tables and phrase templates in demo_data_tables.py (written for this project, not taken from
any dataset) and a fixed seed, so rerunning reproduces the committed files byte for byte:

    python scripts/make_demo_data.py            # rewrites zephyr/demo_data/*.jsonl
    python scripts/make_demo_data.py --out DIR  # writes elsewhere (tests/test_demo_data.py compares)

Beside these short dialogues, `instruct` rows teach verifiable instruction following (demo_data_instructions.py):
requests with length, format, keyword, case, quotation, postscript and language constraints, replies of 20-260
words built from hand-written topic prose, each checked with IFEval's checkers while it is generated (the chosen
reply follows every constraint, the rejected one breaks one). They need the `[eval]` extra (if-verifiable and
NLTK's punkt model). Test files use held-out topics.

Arithmetic is always written as `a op b = c` with c computed here, never typed in, so tests can recheck it.
Rejected replies are worse in ways a small model picks up in a few DPO steps: a wrong fact or sum, an off-topic
answer, a curt non-answer, rudeness, or rambling repetition. Test files use only held-out "specs" (a question's
underlying fact or numbers), so no test prompt, however phrased, is seen in training.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

SEED = 2024
OUT = Path(__file__).resolve().parents[1] / "zephyr" / "demo_data"
MAX_WORDS = 60  # every reply stays under this, so training on a 2-core CPU stays cheap
TEST_FRACTION = 0.2

# the fact tables and phrase templates live beside this script (run as a script, its folder is on sys.path)
from demo_data_tables import *  # noqa: F401,F403,E402
from demo_data_instructions import checker, instruction_item  # noqa: E402
from demo_data_topics import TOPICS  # noqa: E402

INSTRUCT_QUOTAS = {"sft_train": 900, "sft_test": 30, "pairs_train": 220, "pairs_test": 40}
INSTRUCT_TEST_TOPICS = 5  # topics held out for the test files
# the constraints of every instruction-following request, in IFEval's input format plus the file it is in, so a
# test can re-check the shipped replies with IFEval's checkers
CHECKS = "instruction_checks"


# ------------------------------------------------------------------------------------------------ items


@dataclass(frozen=True)
class Item:
    """One question rendered with a random phrasing: its correct reply and the material for worse replies."""
    prompt: str
    reply: str
    topic: str  # a few words naming the subject (for rambling replies)
    wrong: str | None = None  # a plausible but incorrect reply, where a fact can be wrong
    followup: tuple[str, str, str | None] | None = None  # (user follow-up, correct reply, wrong reply)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def arithmetic(spec, rng) -> Item:
    op, a, b = spec
    c = OPS[op](a, b)
    wrong = c + rng.choice([d for d in (-10, -2, -1, 1, 2, 10) if c + d > 0])
    say = rng.choice(ARITH_SAY)
    asks, follow = rng.choice(ARITH_FOLLOW)
    expr = follow.format(c=c)
    value = eval(expr.replace("×", "*"))  # our own two-token expression; computed, never typed in
    return Item(rng.choice(ARITH_ASK[op]).format(a=a, b=b), say.format(eq=f"{a} {op} {b} = {c}", c=c),
                f"{a} {op} {b}", say.format(eq=f"{a} {op} {b} = {wrong}", c=wrong),
                (rng.choice(asks), f"{expr} = {value}.", f"{expr} = {value + rng.choice([-3, 1, 2, 5])}."))


def word_problem(spec, rng) -> Item:
    index, a, b, things = spec
    question, answer, op = WORD_PROBLEMS[index][:3]
    if op == "÷":
        a = a * b  # the quotient was drawn; the total is built from it so the division is exact
    c = OPS[op](a, b)
    wrong = c + rng.choice([-2, -1, 1, 3])
    return Item(question.format(a=a, b=b, things=things),
                answer.format(eq=f"{a} {op} {b} = {c}", a=a, c=c, things=things), "this word problem",
                answer.format(eq=f"{a} {op} {b} = {wrong}", a=a, c=wrong, things=things))


def conversion(spec, rng) -> Item:
    kind, unit, n = spec
    if kind == "T":  # Celsius -> Fahrenheit
        f = n * 9 // 5 + 32
        return Item(rng.choice(TEMP_ASK["F"]).format(t=n), f"{n} × 9 ÷ 5 + 32 = {f}, so {n} °C is {f} °F.",
                    "temperatures", f"{n} °C is {n + 32} °F.")
    if kind == "t":  # Fahrenheit -> Celsius (n is the Celsius value, drawn so both are whole numbers)
        f = n * 9 // 5 + 32
        return Item(rng.choice(TEMP_ASK["C"]).format(t=f),
                    f"{f} - 32 = {f - 32}, and {f - 32} × 5 ÷ 9 = {n}, so {f} °F is {n} °C.", "temperatures",
                    f"{f} °F is {f - 32} °C.")
    big, small, factor, bad = UNITS[unit]
    if kind == "up":
        ask = rng.choice(CONV_ASK).format(n=n, frm=big, to=small)
        reply = rng.choice(CONV_SAY_UP).format(n=n, f=factor, r=n * factor, frm=big, to=small)
        return Item(cap(ask), reply, f"{big} and {small}", f"{n} {big} is {n * bad} {small}.")
    total = n * factor
    ask = rng.choice(CONV_ASK).format(n=total, frm=small, to=big)
    reply = rng.choice(CONV_SAY_DOWN).format(n=total, f=factor, r=n, frm=small, to=big)
    return Item(ask, reply, f"{small} and {big}", f"{total} {small} is {total * bad} {big}.")


def capital(spec, rng) -> Item:
    country, city, continent = CAPITALS[spec]
    say = rng.choice(["The capital of {c} is {x}.", "{x} is the capital of {c}.", "The capital city of {c} is {x}."])
    asks = ["What is the capital of {c}?", "What's the capital city of {c}?", "Which city is the capital of {c}?",
            "Tell me the capital of {c}, please.", "Do you know the capital of {c}?"]
    others = [row[1] for row in CAPITALS if row[1] != city]
    wrong_city = CONFUSED.get(country) or rng.choice(others)
    if continent == "*":
        follow = (rng.choice(CONTINENT_ASK), f"{cap(country)} spans both Europe and Asia.", None)
    else:
        other = rng.choice([c for c in CONTINENTS if c != continent])
        follow = (rng.choice(CONTINENT_ASK), f"{cap(country)} is in {continent}.", f"{cap(country)} is in {other}.")
    return Item(rng.choice(asks).format(c=country), cap(say.format(c=country, x=city)), f"the capital of {country}",
                cap(say.format(c=country, x=wrong_city)), follow)


def fact(spec, rng) -> Item:
    topic, asks, reply, wrong = FACTS[spec]
    return Item(rng.choice(asks), reply, topic, wrong)


def definition(spec, rng) -> Item:
    article, term, body, example = DEFINITIONS[spec]
    other = rng.choice([row[2] for row in DEFINITIONS if row[1] != term])
    named = f"{article} {term}".strip()
    asks = [f"What is {named}?", f"What does \"{term}\" mean?", f"Define {term} in one sentence.",
            f"Can you explain what {named} is?"]
    say = rng.choice(["{N} is {b}.", "Simply put, {n} is {b}.", "{N} is {b}. {e}"])
    fill = dict(N=cap(named), n=named, e=example)
    reply, wrong = say.format(b=body, **fill), say.format(b=other, **fill).replace(f" {example}", "")
    follow = None if example in reply else (rng.choice(EXAMPLE_ASK), f"Sure! {example}", None)
    return Item(rng.choice(asks), reply, term, wrong, follow)


def howto(spec, rng) -> Item:
    topic, asks, reply, tip = HOWTOS[spec]
    return Item(rng.choice(asks), reply, topic, None, (rng.choice(TIP_ASK), tip, None))


def writing(spec, rng) -> Item:
    kind, index = spec
    if kind == "haiku":
        topic, poem = HAIKUS[index]
        ask = rng.choice(["Write a haiku about {t}.", "Could you write me a haiku on {t}?",
                          "A short haiku about {t}, please."]).format(t=topic)
        return Item(ask, rng.choice(["Here's a haiku about {t}:\n\n{p}", "{p}", "Here you go:\n\n{p}"]).format(
            t=topic, p=poem), f"a haiku about {topic}")
    business, slogan = SLOGANS[index]
    ask = rng.choice(["Give me a one-line slogan for {b}.", "I need a catchy slogan for {b}.",
                      "Suggest a short slogan for {b}."]).format(b=business)
    return Item(ask, rng.choice(["How about: \"{s}\"", "Try this: \"{s}\"", "\"{s}\""]).format(s=slogan),
                f"a slogan for {business}")


def rephrase(spec, rng) -> Item:
    kind, source, target = REPHRASES[spec]
    return Item(rng.choice(REPHRASE_ASK[kind]).format(s=source), rng.choice(REPHRASE_SAY).format(t=target),
                "that sentence", f"Here you go: \"{source}\"")


def refusal(spec, rng) -> Item:
    topic, ask, reply = REFUSALS[spec]
    return Item(ask, reply, topic)


RENDER = {"arithmetic": arithmetic, "word": word_problem, "conversion": conversion, "capital": capital,
          "fact": fact, "definition": definition, "howto": howto, "writing": writing, "rephrase": rephrase,
          "refusal": refusal}

# ------------------------------------------------------------------------------------------------ specs and files

QUOTAS = {  # rows per category in each file (SFT ~240/30, pairs ~200/60)
    "sft_train": dict(arithmetic=52, word=22, conversion=40, capital=30, fact=22, definition=18, howto=18,
                      writing=14, rephrase=12, refusal=12),
    "sft_test": dict(arithmetic=6, word=3, conversion=5, capital=4, fact=3, definition=2, howto=2, writing=2,
                     rephrase=1, refusal=2),
    "pairs_train": dict(arithmetic=45, word=15, conversion=30, capital=28, fact=20, definition=15, howto=14,
                        writing=10, rephrase=10, refusal=13),
    "pairs_test": dict(arithmetic=14, word=5, conversion=10, capital=8, fact=6, definition=4, howto=4, writing=3,
                       rephrase=3, refusal=3),
}


def unique(rng, draw, count: int) -> list:
    seen: list = []
    while len(seen) < count:
        spec = draw(rng)
        if spec not in seen:
            seen.append(spec)
    return seen


def draw_arithmetic(rng):
    op = rng.choice("+-×÷")
    if op == "+":
        return op, rng.randint(2, 250), rng.randint(2, 99)
    if op == "-":
        a = rng.randint(20, 300)
        return op, a, rng.randint(2, a - 1)
    if op == "×":
        return op, rng.randint(2, 25), rng.randint(2, 12)
    b = rng.randint(2, 12)
    return op, b * rng.randint(2, 20), b


def draw_word_problem(rng):
    index = rng.randrange(len(WORD_PROBLEMS))
    (a_lo, a_hi), (b_lo, b_hi) = WORD_PROBLEMS[index][3:]
    b = rng.randint(b_lo, b_hi)
    b = b - b % 5 if b >= 40 else b  # round speeds like 40, 45, ... km per hour
    return index, rng.randint(a_lo, a_hi), b, rng.choice(THINGS)


def draw_conversion(rng):
    kind = rng.choice(["up", "up", "down", "down", "T", "t"])
    if kind in "Tt":
        return kind, -1, rng.choice(range(5, 45, 5))
    return kind, rng.randrange(len(UNITS)), rng.randint(2, 12)


def all_specs(rng) -> dict[str, list]:
    return {
        "arithmetic": unique(rng, draw_arithmetic, 200),
        "word": unique(rng, draw_word_problem, 80),
        "conversion": unique(rng, draw_conversion, 130),
        "capital": list(range(len(CAPITALS))),
        "fact": list(range(len(FACTS))),
        "definition": list(range(len(DEFINITIONS))),
        "howto": list(range(len(HOWTOS))),
        "writing": [("haiku", i) for i in range(len(HAIKUS))] + [("slogan", i) for i in range(len(SLOGANS))],
        "rephrase": list(range(len(REPHRASES))),
        "refusal": list(range(len(REFUSALS))),
    }


def split(rng) -> tuple[dict, dict]:
    """Hold out TEST_FRACTION of each category's specs: test rows only ever use held-out facts and numbers."""
    train, test = {}, {}
    for category, specs in all_specs(rng).items():
        rng.shuffle(specs)
        k = round(len(specs) * TEST_FRACTION)
        test[category], train[category] = specs[:k], specs[k:]
    return train, test


def short(text: str) -> str:
    if len(text.split()) >= MAX_WORDS:
        raise AssertionError(f"reply over {MAX_WORDS} words: {text!r}")
    return text


def sft_row(item: Item, rng) -> dict:
    reply = item.reply + (rng.choice(CLOSERS) if rng.random() < 0.1 else "")
    turns = [("user", item.prompt), ("assistant", reply)]
    if rng.random() < 0.2:  # two turns: a real follow-up where the topic has one, otherwise a greeting first
        if item.followup:
            turns += [("user", item.followup[0]), ("assistant", item.followup[1])]
        else:
            greeting, welcome = rng.choice(OPENERS)
            turns = [("user", greeting), ("assistant", welcome)] + turns
    if rng.random() < 0.1:
        turns.insert(0, ("system", rng.choice(SYSTEM_PROMPTS)))
    return {"messages": [{"role": role, "content": short(text)} for role, text in turns]}


def rejected(topic: str, wrong: str | None, rng, off_topic) -> str:
    """A reply that is worse in one obvious way; a wrong fact where one exists, else a mix of the others."""
    kinds = ["off_topic", "curt", "rude", "ramble"] + (["wrong"] * 3 if wrong else [])
    kind = rng.choice(kinds)
    if kind == "wrong":
        return wrong
    if kind == "off_topic":
        return off_topic(rng)
    if kind == "curt":
        return rng.choice(CURT)
    if kind == "rude":
        return rng.choice(RUDE)
    return rng.choice(RAMBLE).format(topic=topic)


def pair_row(item: Item, rng, off_topic) -> dict:
    prompt, chosen, wrong = [("user", item.prompt)], item.reply, item.wrong
    if rng.random() < 0.15:  # multi-turn prompt: a follow-up question, or a greeting before the question
        if item.followup and rng.random() < 0.6:
            prompt += [("assistant", item.reply), ("user", item.followup[0])]
            chosen, wrong = item.followup[1], item.followup[2]
        else:
            opener = rng.choice(OPENERS)
            prompt = [("user", opener[0]), ("assistant", opener[1])] + prompt
    if rng.random() < 0.1:
        prompt.insert(0, ("system", rng.choice(SYSTEM_PROMPTS)))
    worse = rejected(item.topic, wrong, rng, off_topic)
    if worse == chosen:
        raise AssertionError(f"rejected equals chosen: {chosen!r}")
    return {"prompt": [{"role": role, "content": text} for role, text in prompt], "chosen": short(chosen),
            "rejected": short(worse)}


def build(seed: int = SEED) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    train, test = split(rng)

    def off_topic(rng, asked: str) -> str:
        """A correct answer to a question from another category (never the one asked; no equations in these, so
        every equation in a rejected reply stays a wrong one)."""
        category = rng.choice([c for c in ("capital", "fact", "howto") if c != asked])
        return RENDER[category](rng.choice(all_pools[category]), rng).reply

    all_pools = {c: train[c] + test[c] for c in train}
    files = {}
    for name, quota in QUOTAS.items():
        pool = test if name.endswith("test") else train
        rows = []
        for category, count in quota.items():
            for spec in rng.sample(pool[category], count):
                item = RENDER[category](spec, rng)
                rows.append(sft_row(item, rng) if name.startswith("sft") else
                            pair_row(item, rng, lambda rng: off_topic(rng, category)))
        rng.shuffle(rows)
        files[name] = rows
    add_instruction_rows(files, seed)
    return files


def add_instruction_rows(files: dict[str, list[dict]], seed: int) -> None:
    """Verified instruction-following rows (own random stream, so the dialogues above do not change)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # zephyr, for NLTK's punkt model
    from zephyr.eval.ifeval import require_punkt

    require_punkt()
    follows = checker()
    rng = random.Random(seed + 1)
    topics = list(TOPICS)
    rng.shuffle(topics)
    held_out, train_topics = topics[:INSTRUCT_TEST_TOPICS], topics[INSTRUCT_TEST_TOPICS:]
    checks, seen = [], set()
    for name, count in INSTRUCT_QUOTAS.items():
        pool = held_out if name.endswith("test") else train_topics
        rows = []
        for i in range(count):
            item = instruction_item(pool[i % len(pool)], rng, follows)
            while item["prompt"] in seen:  # every request is asked once
                item = instruction_item(pool[i % len(pool)], rng, follows)
            seen.add(item["prompt"])
            checks.append({"file": name, "prompt": item["prompt"], "instruction_id_list": item["instruction_ids"],
                           "kwargs": item["kwargs"]})
            user = [{"role": "user", "content": item["prompt"]}]
            rows.append({"messages": user + [{"role": "assistant", "content": item["chosen"]}]}
                        if name.startswith("sft") else
                        {"prompt": user, "chosen": item["chosen"], "rejected": item["rejected"]})
        files[name] = files[name] + rows
        rng.shuffle(files[name])
    files[CHECKS] = checks


def write(files: dict[str, list[dict]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the .jsonl files")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (the committed files use the default)")
    args = parser.parse_args(argv)
    files = build(args.seed)
    write(files, args.out)
    print(", ".join(f"{name}: {len(rows)}" for name, rows in files.items()), "->", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
