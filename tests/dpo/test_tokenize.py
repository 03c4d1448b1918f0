"""Pairs -> (prompt, chosen, rejected) ids; truncation from the left (prompt) then the right (completions)."""

import pytest

from zephyr.chat_template import prompt_ids, render_ids
from zephyr.dpo.tokenize import TruncationReport, tokenize_pair, tokenize_pairs, truncate, TokenizedPair
from zephyr.errors import DataError


@pytest.mark.parametrize("template", ["zephyr", "chatml"])
def test_prompt_is_the_generation_prompt_and_completion_the_reply(tokenizer, pairs, template):
    pair = pairs[1]  # multi-turn with a system message: earlier assistant turns stay in the prompt
    tp = tokenize_pair(pair, tokenizer, template, 0)
    assert tp.prompt == prompt_ids(pair["prompt"], tokenizer, template)
    eot = tokenizer.eos_token if template == "zephyr" else "<|im_end|>"
    assert tokenizer.decode(tp.chosen) == pair["chosen"] + eot
    assert tokenizer.decode(tp.rejected) == pair["rejected"] + eot
    # prompt + completion is a prefix of the full rendering (only the trailing newline / eos after it is left)
    full, _ = render_ids(pair["prompt"] + [{"role": "assistant", "content": pair["chosen"]}], tokenizer, template)
    assert full[:len(tp.prompt) + len(tp.chosen)] == tp.prompt + tp.chosen
    assert len(full) - len(tp.prompt) - len(tp.chosen) <= 2


def test_truncation_counts():
    report = TruncationReport(pairs=3)
    pair = TokenizedPair(prompt=list(range(10)), chosen=[1] * 8, rejected=[2] * 3, index=0)
    out = truncate(pair, max_length=12, max_prompt_length=6, report=report)
    assert out.prompt == [4, 5, 6, 7, 8, 9]           # the beginning goes
    assert out.chosen == [1] * 6 and out.rejected == [2] * 3   # room = 12 - 6
    assert (report.prompts_truncated, report.completions_truncated) == (1, 1)
    untouched = truncate(TokenizedPair([1, 2], [3], [4], 1), 12, 6, report)
    assert untouched.prompt == [1, 2] and (report.prompts_truncated, report.completions_truncated) == (1, 1)
    assert truncate(TokenizedPair([1] * 6, [3], [4], 2), 6, 6, report) is None  # nothing left to score
    assert report.dropped == [2]


def test_tokenize_pairs_reports(tokenizer, pairs):
    out, report = tokenize_pairs(pairs, tokenizer, "zephyr", max_length=40, max_prompt_length=20)
    assert report.pairs == 4 and report.prompts_truncated >= 1 and report.completions_truncated >= 1
    assert all(len(p.prompt) <= 20 and len(p.prompt) + max(len(p.chosen), len(p.rejected)) <= 40 for p in out)
    assert [p.index for p in out] == [i for i in range(4) if i not in report.dropped]


def test_bad_pair_names_line_and_field(tokenizer):
    with pytest.raises(DataError, match=r"pairs.jsonl:3: field 'rejected'"):
        tokenize_pair({"prompt": [{"role": "user", "content": "hi"}], "chosen": "a"}, tokenizer, "zephyr", 2,
                      source="pairs.jsonl")
    with pytest.raises(DataError, match="ending with a user turn"):
        tokenize_pair({"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "a", "rejected": "b"},
                      tokenizer, "zephyr", 0)
