"""Requests with verifiable constraints (length, format, keywords, case, quotation, postscript, language) and
replies that follow them, for make_demo_data.py. All wording is this project's own; the constraints are of the
kinds IFEval checks, and every reply is checked with IFEval's checkers (if-verifiable) while it is generated:
the chosen reply must follow every constraint of its request, the rejected reply must break one.

A reply is a `Plan` (which topic sentences, which layout, which decorations) rendered to text; the rejected reply
is the same plan with one constraint undone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re

from demo_data_topics import FOREIGN, LANGUAGES, TOPICS

TASKS = ["Write a short article about {t}.", "Explain {t} to a curious friend.", "Tell me about {t}.",
         "Give me an overview of {t}.", "I'd like to understand {t}. Can you help?", "Write a blog post on {t}.",
         "Put together some notes on {t}.", "What should a beginner know about {t}?",
         "Could you write a piece on {t} for a community newsletter?", "Help me learn about {t}.",
         "Write an essay on {t}.", "Write a letter to a friend who asked me about {t}.",
         "Draft a short talk on {t} for a school assembly.", "Write a guide to {t} for newcomers.",
         "Describe {t} in your own words.", "My neighbour keeps asking about {t}. Write something I can send them.",
         "Write a few paragraphs on {t}.", "Compose a short report on {t}.",
         "I'm preparing a leaflet about {t}. Write the text.", "Write an email to my team explaining {t}.",
         "Summarise the main points of {t}.", "Teach me the basics of {t}."]
ENDINGS = ["Hope this helps you get started.", "Happy to go into more detail.", "That is the short version.",
           "Thanks for reading.", "Write back if anything is unclear.", "Good luck with it."]
# Sentences that carry a requested word the topic's prose does not use: a request names its keywords freely (an
# email about a meeting that must say "harbour"), so the reply has to take the word from the request.
CARRY_MANY = ["This also touches on {ws}, more than you might expect.", "Think of {ws} as part of the picture.",
              "People often link it to {ws}.", "A word on {ws}: it all matters here.",
              "There is a link to {ws} as well."]
CARRY_ONE = ["{W} has a place in this too.", "Here {w} matters as well.", "Keep {w} in mind along the way.",
             "Nothing about {w} should be rushed.", "{W} comes into it again at this point.",
             "It helps to think about {w} here.", "That is where {w} makes a difference."]
SPLITTERS = ["Part", "Section", "SECTION", "Chapter"]
PLACEHOLDERS = ["[your name]", "[date]", "[town]", "[phone number]", "[email]", "[street]"]
STOP = set("a an the and or but of to in on at for from with by as is are was were be been it its this that these "
           "those so if when than then their there they them you your we our can will not no more most much many "
           "some such into over about only also even just very which what who how why each every other".split())

# constraint name -> (IFEval instruction id, phrasings of the request, groups it excludes others by, weight). The
# weights follow roughly how often each kind of instruction comes up in instruction-following evaluations.
CONSTRAINTS = {
    "words_min": ("length_constraints:number_words",
                  ["Use at least {n} words.", "Make it {n} words or longer.",
                   "The reply should run to no fewer than {n} words.", "I need a minimum of {n} words.",
                   "Your answer has to be {n} words long at the very least."], {"length"}, 3),
    "words_max": ("length_constraints:number_words",
                  ["Keep it under {n} words.", "Stay below {n} words in total.", "Fewer than {n} words, please.",
                   "The whole thing must be shorter than {n} words.", "Do not reach {n} words."], {"length"}, 3),
    "sentences_max": ("length_constraints:number_sentences",
                      ["Write fewer than {n} sentences.", "No more than {m} sentences, please.",
                       "Your reply must contain less than {n} sentences.", "Limit yourself to {m} sentences at most."],
                      {"length", "layout"}, 3),
    "sentences_min": ("length_constraints:number_sentences",
                      ["Write at least {n} sentences.", "The answer needs {n} sentences or more.",
                       "Use no fewer than {n} sentences."], {"length"}, 2),
    "paragraphs": ("length_constraints:number_paragraphs",
                   ["Split it into {n} paragraphs with a line holding only *** between them.",
                    "Give me exactly {n} paragraphs, divided from each other by the markdown rule ***.",
                    "Write {n} paragraphs and separate them with the divider ***.",
                    "The reply should have {n} paragraphs; put *** on its own line between paragraphs."],
                   {"layout"}, 3),
    "first_word": ("length_constraints:nth_paragraph_first_word",
                   ["Write {n} paragraphs separated by blank lines, and begin paragraph {i} with the word '{w}'.",
                    "I want {n} paragraphs (a blank line between each); the first word of paragraph {i} must be "
                    "\"{w}\"."], {"layout", "title", "end", "placeholders", "repeat", "highlight"}, 1),
    "bullets": ("detectable_format:number_bullet_lists",
                ["Format the answer as exactly {n} bullet points, each line starting with '* '.",
                 "Answer with a list of precisely {n} items written as markdown bullets (* item).",
                 "Use exactly {n} markdown bullet points such as:\n* first point\n* second point",
                 "Your response must be a bulleted list of {n} points, each starting with an asterisk."],
                {"layout", "highlight"}, 3),
    "sections": ("detectable_format:multiple_sections",
                 ["Organise the reply into {n} parts and label each one '{s} X' on its own line.",
                  "Use {n} sections headed {s} 1, {s} 2 and so on.",
                  "Divide the answer into {n} sections and begin each with {s} followed by its number."],
                 {"layout"}, 2),
    "highlights": ("detectable_format:number_highlighted_sections",
                   ["Emphasise at least {n} key phrases in markdown italics, like *this*.",
                    "Mark at least {n} important parts with single asterisks on both sides.",
                    "Highlight {n} or more passages using markdown, for example *an important point*.",
                    "Put at least {n} phrases between asterisks so they stand out, e.g. *key idea*."],
                   {"highlight", "json"}, 4),
    "json": ("detectable_format:json_format",
             ["Return the whole answer as valid JSON.", "Format your entire reply as one JSON object.",
              "Wrap everything you write in JSON format.", "Answer in JSON only; no text outside the JSON."],
             {"layout", "json", "wrap", "end", "title", "repeat"}, 2),
    "title": ("detectable_format:title",
              ["Give it a title inside double angle brackets, for example <<A Good Title>>.",
               "Start with a title enclosed in << and >>.",
               "Add a heading set between double angle brackets, e.g. <<my heading>>.",
               "The piece needs a title written between << and >>."], {"title"}, 3),
    "keywords": ("keywords:existence",
                 ["Mention {ws} somewhere in it.", "Be sure these words show up: {ws}.",
                  "Include the keywords {ws} in your answer.", "Work {ws} into it."], {"words"}, 3),
    "forbidden": ("keywords:forbidden_words",
                  ["Do not use the words '{a}' or '{b}'.", "Avoid the words \"{a}\" and \"{b}\" completely.",
                   "Never say {a} or {b} in the reply.", "The words '{a}' and '{b}' are not allowed."],
                  {"forbidden"}, 4),
    "frequency": ("keywords:frequency",
                  ["Use the word '{w}' at least {n} times.", "The word \"{w}\" should come up {n} times or more.",
                   "Make sure '{w}' appears at least {n} times.", "Repeat the word {w} no fewer than {n} times."],
                  {"words"}, 3),
    "letter": ("keywords:letter_frequency",
               ["Use the letter '{l}' at least {n} times.", "The letter {l} should appear {n} times or more.",
                "Make sure the letter \"{l}\" shows up at least {n} times in your reply."], {"letter"}, 2),
    "lower": ("change_case:english_lowercase",
              ["Write everything in lowercase letters only.", "No capital letters anywhere, please: all lowercase.",
               "Your whole reply must be in lowercase English, with no capitals at all.",
               "Use only small letters; capital letters are not allowed."], {"case", "repeat"}, 3),
    "upper": ("change_case:english_capital",
              ["Write the whole reply in capital letters.", "Put every letter of the answer in upper case.",
               "Answer in English using only CAPITAL LETTERS.", "The whole response should be in all caps."],
              {"case", "repeat", "placeholders"}, 2),
    "capital_words": ("change_case:capital_word_frequency",
                      ["Use at least {n} words written entirely in capitals for emphasis.",
                       "Stress at least {n} words by writing them in ALL CAPS.",
                       "Include {n} or more words in all capital letters."], {"case"}, 2),
    "quotation": ("startend:quotation",
                  ["Surround the entire reply with double quotation marks.",
                   "Enclose the whole answer in a pair of double quotes.",
                   "Wrap your response in double quotation marks from start to end.",
                   "Begin and end the reply with a double quote character."], {"wrap", "end"}, 3),
    "postscript": ("detectable_content:postscript",
                   ["After the main text, write a short afterthought introduced by {p}",
                    "Close with a note beginning {p}", "At the end, put a postscript opening with {p}",
                    "Finish with an extra note starting with {p}"], {"end"}, 2),
    "ending": ("startend:end_checker",
               ["Finish with the exact sentence \"{e}\" and nothing after it.",
                "The very last words must be: {e}", "End on exactly these words: {e}",
                "Make sure your answer ends with \"{e}\" and that nothing follows it."], {"end"}, 2),
    "no_comma": ("punctuation:no_comma",
                 ["Please avoid commas entirely.", "Do not use a single comma.",
                  "Write it without any commas.", "Commas are not allowed anywhere in your answer.",
                  "Leave out every comma."], {"comma"}, 5),
    "placeholders": ("detectable_content:number_placeholders",
                     ["Include at least {n} placeholders in square brackets, such as [name].",
                      "Leave at least {n} blanks for me to fill in, written like [address].",
                      "Put in {n} or more placeholders in square brackets, for example [city]."],
                     {"placeholders"}, 2),
    "repeat": ("combination:repeat_prompt",
               ["Before you answer, copy my request above word for word, then give your answer.",
                "First echo the request exactly as I wrote it, then respond.",
                "Start by repeating my request unchanged (not this sentence), then answer it."],
               {"repeat", "json"}, 3),
    "two": ("combination:two_responses",
            ["Give two different versions, separated by a line of six asterisks (******).",
             "Write two distinct answers and put ****** between them.",
             "I want two alternative replies; separate them with six asterisks like this: ******"],
            {"layout", "wrap", "end", "title"}, 2),
}


@dataclasses.dataclass
class Plan:
    topic: tuple
    sentences: list[str]
    layout: tuple = ("plain",)  # plain | paragraphs n | bullets n | sections n splitter | json | two
    foreign: str | None = None
    title: bool = False
    highlights: int = 0
    capital_words: int = 0
    case: str | None = None
    quotation: bool = False
    postscript: str | None = None
    ending: str | None = None
    no_comma: bool = False
    placeholders: int = 0
    repeat: str | None = None
    carried: tuple = ()  # sentences holding requested words, one after each of the first body sentences


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 4 and w not in STOP]


@functools.cache
def foreign_words(topic_name: str) -> list[str]:
    """Content words of the other topics that this topic's prose never uses: words a request can require."""
    words = {name: set(content_words(" ".join(sentences))) for name, _, sentences in TOPICS}
    return sorted(set().union(*words.values()) - words[topic_name])


def closing_sentences(topic_name: str) -> list[str]:
    """Short sentences of the other topics: end phrases a request can ask for, each different from the reply."""
    return [s for name, _, sentences in TOPICS if name != topic_name for s in sentences if len(s.split()) <= 12]


def listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def chunks(items: list, n: int) -> list[list]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return out


def render_body(plan: Plan, sentences: list[str]) -> str:
    kind = plan.layout[0]
    if plan.foreign:
        return plan.foreign
    if kind == "paragraphs":
        return "\n\n***\n\n".join(" ".join(group) for group in chunks(sentences, plan.layout[1]))
    if kind == "blank_paragraphs":
        return "\n\n".join(" ".join(group) for group in chunks(sentences, plan.layout[1]))
    if kind == "bullets":
        return "\n".join(f"* {s}" for s in sentences[: plan.layout[1]])
    if kind == "sections":
        n, splitter = plan.layout[1], plan.layout[2]
        return "\n\n".join(f"{splitter} {i}\n{' '.join(group)}"
                           for i, group in enumerate(chunks(sentences, n), 1))
    if len(sentences) >= 6:  # a longer plain reply reads better in two paragraphs
        return "\n\n".join(" ".join(group) for group in chunks(sentences, 2))
    return " ".join(sentences)


def emphasise(text: str, plan: Plan) -> str:
    if plan.highlights:  # italicise the first words of the first sentences
        parts = re.split(r"(?<=[.!?]) ", text)
        for i in range(min(plan.highlights, len(parts))):
            words = parts[i].split(" ")
            k = min(3, len(words) - 1)
            parts[i] = "*" + " ".join(words[:k]) + "* " + " ".join(words[k:])
        text = " ".join(parts)
    if plan.capital_words:
        seen = 0
        for word in dict.fromkeys(content_words(text)):
            if seen == plan.capital_words:
                break
            text, count = re.subn(rf"\b{word}\b", word.upper(), text, count=1)
            seen += count
    return text


def render(plan: Plan) -> str:
    sentences = []
    for i, sentence in enumerate(plan.sentences):  # the carried sentences spread through the first ones
        sentences += [sentence, *plan.carried[i: i + 1]]
    sentences += plan.carried[len(plan.sentences):]
    sentences = [s.replace(",", "") for s in sentences] if plan.no_comma else sentences
    if plan.layout[0] == "two":
        half = len(sentences) // 2
        text = render_body(dataclasses.replace(plan, layout=("plain",)), sentences[:half]) + "\n******\n" + \
            render_body(dataclasses.replace(plan, layout=("plain",)), sentences[half:])
    else:
        text = emphasise(render_body(plan, sentences), plan)
    if plan.placeholders:
        text += "\n\n" + "Shared by " + ", ".join(PLACEHOLDERS[: plan.placeholders]) + "."
    if plan.layout[0] == "json":
        text = json.dumps({"topic": plan.topic[0], "answer": text}, ensure_ascii=False, indent=2)
    if plan.title:
        text = f"<<{plan.topic[1]}>>\n\n{text}"
    if plan.postscript:
        text += f"\n\n{plan.postscript}"
    if plan.ending:
        text += f"\n\n{plan.ending}"
    if plan.case == "lower":
        text = text.lower()
    elif plan.case == "upper":
        text = text.upper()
    if plan.quotation:
        text = f'"{text}"'
    if plan.repeat:
        text = f"{plan.repeat}\n\n{text}"
    return text


@dataclasses.dataclass
class Request:
    """A request's text, its IFEval instruction ids and kwargs, the plan of a reply that follows it, and per
    constraint the change to the plan that breaks it."""
    prompt: str
    instruction_ids: list[str]
    kwargs: list[dict]
    plan: Plan
    breakers: list


def words_of(sentences: list[str]) -> int:
    return sum(len(re.findall(r"\w+", s)) for s in sentences)


# Breakers change a reply as little as breaking its constraint needs, so a rejected reply is about as long as
# the chosen one: a pair should teach the constraint, not that longer (or shorter) replies win.


def shortest_cut(sentences: list[str], broken) -> list[str]:
    """The longest prefix of `sentences` that breaks the constraint (`broken(prefix)` true)."""
    for end in range(len(sentences) - 1, 0, -1):
        if broken(sentences[:end]):
            return sentences[:end]
    return sentences[:1]


def longest_cut(sentences: list[str], broken) -> list[str]:
    """The shortest prefix of `sentences` that breaks the constraint."""
    for end in range(1, len(sentences) + 1):
        if broken(sentences[:end]):
            return sentences[:end]
    return sentences


def make_request(topic: tuple, rng) -> Request:
    """One request on `topic` with 1-3 compatible constraints, and a reply plan that follows them all."""
    name, title, sentences = topic
    foreign = FOREIGN.get(name)
    count = rng.randint(1, 3)
    chosen, groups = [], set()
    # a weighted random order (each key drawn as u ** (1 / weight)): common kinds come up more often
    pool = sorted(CONSTRAINTS, key=lambda c: rng.random() ** (1 / CONSTRAINTS[c][3]), reverse=True)
    if foreign and rng.random() < 0.35:
        chosen, groups = ["language"], {"layout", "words", "forbidden", "case", "highlight", "title", "length",
                                        "json", "repeat", "placeholders", "comma"}
        count = rng.randint(1, 2)
    for c in pool:
        if len(chosen) >= count:
            break
        if CONSTRAINTS[c][2] & groups:
            continue
        chosen.append(c)
        groups |= CONSTRAINTS[c][2]
    start = rng.randrange(0, 3)
    body = sentences[start: start + rng.randint(5, 9)]
    plan = Plan(topic=topic, sentences=body)
    phrases, ids, kwargs, breakers = [], [], [], []
    task = rng.choice(TASKS).format(t=name)

    def add(c, kw, breaker, **fmt):
        phrases.append(rng.choice(CONSTRAINTS[c][1]).format(**fmt) if c in CONSTRAINTS else fmt["text"])
        ids.append(CONSTRAINTS[c][0] if c in CONSTRAINTS else "language:response_language")
        kwargs.append(kw)
        breakers.append(breaker)

    for c in chosen:
        if c == "language":
            code = rng.choice(sorted(LANGUAGES))
            plan.foreign = foreign[code]
            add(c, {"language": code}, lambda p: dataclasses.replace(p, foreign=None),
                text=rng.choice(["Please answer in {l}.", "Reply in {l}, not English.",
                                 "I'm practising {l}, so write your answer in {l}."]).format(l=LANGUAGES[code]))
        elif c == "words_min":
            plan.sentences = sentences[rng.choice([0, start]):]  # the longest replies: up to the whole topic
            n = max(40, words_of(plan.sentences) - rng.randint(5, 25)) // 10 * 10
            add(c, {"relation": "at least", "num_words": n},
                lambda p: dataclasses.replace(p, sentences=shortest_cut(p.sentences, lambda s: words_of(s) < n)),
                n=n)
        elif c == "words_max":
            plan.sentences = plan.sentences[: rng.randint(2, 4)]
            n = (words_of(plan.sentences) + rng.randint(8, 20)) // 5 * 5
            add(c, {"relation": "less than", "num_words": n},
                lambda p: dataclasses.replace(p, sentences=longest_cut(sentences, lambda s: words_of(s) >= n)),
                n=n)
        elif c == "sentences_min":
            n = max(3, len(plan.sentences) - rng.randint(0, 2))
            add(c, {"relation": "at least", "num_sentences": n},
                lambda p: dataclasses.replace(p, sentences=p.sentences[:n - 1]), n=n)
        elif c == "first_word":
            n = rng.randint(2, 4)
            plan.sentences = sentences[start: start + max(len(plan.sentences), 2 * n)]
            plan.layout = ("blank_paragraphs", n)
            i = rng.randint(1, n)
            w = re.findall(r"[A-Za-z]+", chunks(plan.sentences, n)[i - 1][0])[0].lower()
            add(c, {"num_paragraphs": n, "nth_paragraph": i, "first_word": w},
                lambda p: dataclasses.replace(p, layout=("blank_paragraphs", n + 1)), n=n, i=i, w=w)
        elif c == "letter":
            counts = {ch: " ".join(plan.sentences).lower().count(ch) for ch in "abcdefghijklmnopqrstuvwxyz"}
            letter = rng.choice([ch for ch, k in counts.items() if k >= 4])
            n = max(2, counts[letter] - rng.randint(0, 3))
            add(c, {"letter": letter, "let_frequency": n, "let_relation": "at least"},
                lambda p: dataclasses.replace(p, sentences=shortest_cut(
                    p.sentences, lambda s: " ".join(s).lower().count(letter) < n)), l=letter, n=n)
        elif c == "sentences_max":
            plan.sentences = plan.sentences[: rng.randint(2, 4)]
            n = len(plan.sentences) + rng.randint(1, 2)
            add(c, {"relation": "less than", "num_sentences": n},
                lambda p: dataclasses.replace(p, sentences=sentences[:n]), n=n, m=n - 1)
        elif c == "paragraphs":
            n = rng.randint(2, 4)
            plan.sentences = sentences[start: start + max(len(plan.sentences), 2 * n)]
            plan.layout = ("paragraphs", n)
            add(c, {"num_paragraphs": n}, lambda p: dataclasses.replace(p, layout=("paragraphs", n - 1)), n=n)
        elif c == "bullets":
            n = rng.randint(3, 6)
            plan.sentences = sentences[start: start + n]
            plan.layout = ("bullets", n)
            add(c, {"num_bullets": n}, lambda p: dataclasses.replace(p, layout=("bullets", n - 1)), n=n)
        elif c == "sections":
            n, s = rng.randint(2, 3), rng.choice(SPLITTERS)
            plan.layout = ("sections", n, s)
            add(c, {"section_spliter": s, "num_sections": n},
                lambda p: dataclasses.replace(p, layout=("plain",)), n=n, s=s)
        elif c == "highlights":
            n = rng.randint(2, 3)
            plan.highlights = n
            add(c, {"num_highlights": n}, lambda p: dataclasses.replace(p, highlights=0), n=n)
        elif c == "json":
            plan.layout = ("json",)
            add(c, {}, lambda p: dataclasses.replace(p, layout=("plain",)))
        elif c == "title":
            plan.title = True
            add(c, {}, lambda p: dataclasses.replace(p, title=False))
        elif c == "keywords":
            words, quote = rng.sample(foreign_words(name), rng.randint(1, 3)), rng.choice(["'", '"', ""])
            plan.carried = (rng.choice(CARRY_MANY).format(ws=listed(words)),)
            add(c, {"keywords": words}, lambda p: dataclasses.replace(p, carried=()),
                ws=listed([f"{quote}{w}{quote}" for w in words]))
        elif c == "forbidden":
            if len(plan.sentences) >= len(sentences) - 1:  # leave a sentence out, to hold the forbidden words
                plan.sentences = plan.sentences[:-2]
            used = set(re.findall(r"[a-z]+", " ".join(plan.sentences).lower()))
            unused = [s for s in sentences if s not in plan.sentences]
            options = sorted({w for s in unused for w in content_words(s)} - used)
            a, b = rng.sample(options, 2)
            extra = next(s for s in unused if a in content_words(s))
            add(c, {"forbidden_words": [a, b]},
                lambda p: dataclasses.replace(p, sentences=p.sentences[:-1] + [extra]), a=a, b=b)
        elif c == "frequency":
            w, n = rng.choice(foreign_words(name)), rng.randint(2, 3)
            plan.carried = tuple(t.format(w=w, W=w.capitalize()) for t in rng.sample(CARRY_ONE, n))
            add(c, {"keyword": w, "frequency": n, "relation": "at least"},
                lambda p: dataclasses.replace(p, carried=p.carried[:-1]), w=w, n=n)
        elif c == "lower":
            plan.case = "lower"
            add(c, {}, lambda p: dataclasses.replace(p, case=None))
        elif c == "upper":
            plan.case = "upper"
            add(c, {}, lambda p: dataclasses.replace(p, case=None))
        elif c == "capital_words":
            n = rng.randint(2, 4)
            plan.capital_words = n
            add(c, {"capital_frequency": n, "capital_relation": "at least"},
                lambda p: dataclasses.replace(p, capital_words=0), n=n)
        elif c == "quotation":
            plan.quotation = True
            add(c, {}, lambda p: dataclasses.replace(p, quotation=False))
        elif c == "postscript":
            marker = rng.choice(["P.S.", "P.P.S"])
            extra = rng.choice([s for s in sentences if s not in plan.sentences] or sentences)
            plan.postscript = f"{marker} {extra}"
            add(c, {"postscript_marker": marker}, lambda p: dataclasses.replace(p, postscript=None), p=marker)
        elif c == "ending":
            e = rng.choice(ENDINGS) if rng.random() < 0.3 else rng.choice(closing_sentences(name))
            plan.ending = e
            add(c, {"end_phrase": e}, lambda p: dataclasses.replace(p, ending=None), e=e)
        elif c == "no_comma":
            plan.no_comma = True
            add(c, {}, lambda p: dataclasses.replace(p, no_comma=False,
                                                     sentences=[p.sentences[0].replace(" and ", ", and ", 1)
                                                                if "," not in " ".join(p.sentences) else
                                                                p.sentences[0]] + p.sentences[1:]))
        elif c == "placeholders":
            n = rng.randint(2, 3)
            plan.placeholders = n
            add(c, {"num_placeholders": n}, lambda p: dataclasses.replace(p, placeholders=0), n=n)
        elif c == "repeat":  # the text to repeat is known once every other phrase is: filled in below
            add(c, {}, lambda p: dataclasses.replace(p, repeat=None))
        elif c == "two":
            plan.sentences = sentences[start: start + 6]
            plan.layout = ("two",)
            add(c, {}, lambda p: dataclasses.replace(p, layout=("plain",)))
    if "repeat" in chosen:
        # "repeat my request" means the whole request but the repeat instruction itself, which comes last, on
        # the same line or a line of its own
        at = chosen.index("repeat")
        request = " ".join([task] + phrases[:at] + phrases[at + 1:])
        plan.repeat = kwargs[at]["prompt_to_repeat"] = request
        return Request(request + rng.choice([" ", "\n"]) + phrases[at], ids, kwargs, plan, breakers)
    return Request(task + " " + " ".join(phrases), ids, kwargs, plan, breakers)


def checker():
    """-> follows(instruction_ids, kwargs, prompt, text) -> [(strict, loose) per instruction], IFEval's own checkers
    run as `zephyr eval ifeval` runs them (seeded, so a verified reply stays verified)."""
    from zephyr.eval import ifeval

    def follows(ids, kwargs, prompt, text):
        found = ifeval.check({"prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs}, text)
        assert len(found) == len(ids), ids
        return [(r["strict"], r["loose"]) for r in found]

    return follows


def instruction_item(topic: tuple, rng, follows) -> dict:
    """{prompt, chosen, rejected, instruction_ids, kwargs}: chosen follows every constraint (strict), rejected
    breaks one (strict and loose), both checked here; a request whose reply would not verify is redrawn."""
    for _ in range(50):
        request = make_request(topic, rng)
        chosen = render(request.plan)
        if not all(s for s, _ in follows(request.instruction_ids, request.kwargs, request.prompt, chosen)):
            continue
        broken = rng.randrange(len(request.breakers))
        rejected = render(request.breakers[broken](request.plan))
        result = follows(request.instruction_ids, request.kwargs, request.prompt, rejected)
        if any(result[broken]) or rejected.strip() in ("", chosen.strip()):
            continue
        return {"prompt": request.prompt, "chosen": chosen, "rejected": rejected,
                "instruction_ids": request.instruction_ids, "kwargs": request.kwargs}
    raise AssertionError(f"no verifiable request for {topic[0]!r}")
