"""Drop training rows whose prompt overlaps an evaluation prompt set (MT-Bench, AlpacaEval, IFEval).

Text is normalised to lowercase NFKC word tokens (`\\w+`, so punctuation and spacing do not matter). A training
user turn is contaminated when it shares one word n-gram with an eval prompt. Eval prompts shorter than n
words have no n-gram; they match only a training turn whose whole normalised text equals them (a 3-word
"What is Atlantis?" must not flag every prompt that contains those words).

n = 8 by default (DEFAULT_NGRAM). 13-grams (GPT-3's choice, made for long documents) leave many chat eval
prompts uncheckable: of the 805 AlpacaEval instructions 257 are shorter than 13 words (88 shorter than 8), and
of the 160 MT-Bench turns 40 (7). With 8 consecutive identical words, a chance match between an unrelated
training prompt and an eval prompt is rare, while paraphrased copies of eval questions are still caught.
Measured on the 1,000 real UltraFeedback training prompts against MT-Bench + AlpacaEval + IFEval: 8-grams flag
4 rows (one a reworded AlpacaEval question - "Mike's mum had 4 kids; 3 of them are Luis, Drake and Matilda" -
and 3 that share a stock phrase such as "could you provide a brief summary of the"), 13-grams flag none,
missing the real paraphrase. Losing 0.3% of training rows is cheaper than an inflated benchmark score.

Speed: the eval side is a set of hashed n-grams; a training turn is checked with one C-level
`set.isdisjoint` over a generator of hashes, no Python loop per n-gram.

Eval files (format detected from each row): MT-Bench question.jsonl (`turns`: every turn is a prompt),
AlpacaEval .json/.jsonl (`instruction`), IFEval .jsonl (`prompt`).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError, DataError
from .io import read_rows

DEFAULT_NGRAM = 8
_WORD = re.compile(r"\w+")
# row key -> benchmark name; checked in this order
EVAL_FIELDS = (("turns", "mt_bench"), ("instruction", "alpaca_eval"), ("prompt", "ifeval"))


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def ngram_hashes(tokens: list[str], n: int) -> Iterable[int]:
    return map(hash, zip(*(tokens[i:] for i in range(n))))


def read_eval_prompts(path: str | Path) -> tuple[list[str], str]:
    """-> (prompts, detected benchmark name). Raises DataError naming the file/line/field on a bad row."""
    prompts: list[str] = []
    kinds: set[str] = set()
    for where, row in read_rows(path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise where.error(f"an eval row must be an object, got {type(row).__name__}")
        for key, kind in EVAL_FIELDS:
            if key in row:
                break
        else:
            raise where.error("no eval prompt field: expected 'turns' (MT-Bench), 'instruction' (AlpacaEval) "
                              "or 'prompt' (IFEval)", "turns|instruction|prompt")
        value = row[key]
        texts = value if key == "turns" else [value]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise where.error("expected " + ("a list of strings" if key == "turns" else "a string"), key)
        prompts += texts
        kinds.add(kind)
    if not prompts:
        raise DataError("no eval prompts found", str(path))
    return prompts, "+".join(sorted(kinds))


class EvalIndex:
    """The hashed n-grams of a set of eval prompts; `contaminated(texts)` says if any text overlaps them."""

    def __init__(self, prompts: Iterable[str], n: int = DEFAULT_NGRAM):
        if n < 1:
            raise ConfigError(f"--decontaminate_ngram: an n-gram has at least 1 word, got {n}")
        self.n = n
        self.grams: set[int] = set()
        self.short: set[tuple[str, ...]] = set()  # eval prompts shorter than n words, matched whole
        self.prompts = 0
        for prompt in prompts:
            tokens = words(prompt)
            if not tokens:
                continue
            self.prompts += 1
            if len(tokens) < n:
                self.short.add(tuple(tokens))
            else:
                self.grams.update(ngram_hashes(tokens, n))

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], n: int = DEFAULT_NGRAM) -> tuple["EvalIndex", dict]:
        """-> (index, {path: "benchmark (N prompts)"}) for the report."""
        all_prompts, described = [], {}
        for path in paths:
            prompts, kind = read_eval_prompts(path)
            all_prompts += prompts
            described[str(path)] = f"{kind} ({len(prompts)} prompts)"
        return cls(all_prompts, n), described

    def contaminated(self, texts: Iterable[str]) -> bool:
        for text in texts:
            tokens = words(text)
            if len(tokens) >= self.n and not self.grams.isdisjoint(ngram_hashes(tokens, self.n)):
                return True
            if self.short and tuple(tokens) in self.short:
                return True
        return False
