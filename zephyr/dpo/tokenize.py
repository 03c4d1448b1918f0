"""Preference pairs -> token ids: a shared prompt, a chosen and a rejected completion, truncated and counted.

A pair is {"prompt": [messages ending with a user turn], "chosen": str, "rejected": str}. Each side is rendered
with the chat template as prompt + [assistant reply]; the completion is the last assistant turn's masked tokens
(the reply and its end-of-turn marker), the prompt is everything before it, i.e. the prompt rendered with its
generation prompt. Nothing after the end-of-turn marker is scored: generation stops there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tqdm.auto import tqdm

from ..chat_template import ConversationError, render_ids
from ..errors import DataError


@dataclass
class TokenizedPair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    index: int  # position in the split: keys the precomputed reference log-probs


@dataclass
class TruncationReport:
    pairs: int = 0
    prompts_truncated: int = 0      # prompt cut from the left to max_prompt_length
    completions_truncated: int = 0  # chosen or rejected cut on the right to fit max_length
    dropped: list[int] = field(default_factory=list)  # pairs with nothing left to score

    def summary(self) -> str:
        return (f"{self.pairs} pairs: {self.prompts_truncated} prompts truncated (left), "
                f"{self.completions_truncated} completions truncated (right), {len(self.dropped)} dropped")


def _last_run(mask: list[int]) -> tuple[int, int]:
    """[start, end) of the last run of 1s: the final assistant turn."""
    end = len(mask)
    while end and not mask[end - 1]:
        end -= 1
    start = end
    while start and mask[start - 1]:
        start -= 1
    return start, end


def split_completion(prompt: list[dict], reply: str, tokenizer, template: str,
                     index: int | None = None) -> tuple[list[int], list[int]]:
    """-> (prompt ids, completion ids) of prompt + [assistant: reply]."""
    ids, mask = render_ids(list(prompt) + [{"role": "assistant", "content": reply}], tokenizer, template,
                           index=index)
    start, end = _last_run(mask)
    return ids[:start], ids[start:end]


def tokenize_pair(pair: dict, tokenizer, template: str, index: int, source: str | None = None) -> TokenizedPair:
    line = index + 1 if source else index
    for key in ("prompt", "chosen", "rejected"):
        if key not in pair:
            raise DataError(f"missing '{key}'", source, line, key)
    prompt = pair["prompt"]
    if not isinstance(prompt, list) or not prompt or prompt[-1].get("role") != "user":
        raise DataError("the prompt must be a list of messages ending with a user turn", source, line, "prompt")
    try:
        prompt_c, chosen = split_completion(prompt, pair["chosen"], tokenizer, template, index)
        prompt_r, rejected = split_completion(prompt, pair["rejected"], tokenizer, template, index)
    except ConversationError as err:
        raise DataError(err.problem, source, line, "prompt") from err
    if prompt_c != prompt_r:  # a token merged across the prompt/reply boundary: keep the common prefix
        common = next((i for i, (a, b) in enumerate(zip(prompt_c, prompt_r)) if a != b),
                      min(len(prompt_c), len(prompt_r)))
        chosen, rejected = prompt_c[common:] + chosen, prompt_r[common:] + rejected
        prompt_c = prompt_c[:common]
    return TokenizedPair(prompt_c, chosen, rejected, index)


def truncate(pair: TokenizedPair, max_length: int | None, max_prompt_length: int | None,
             report: TruncationReport) -> TokenizedPair | None:
    """Prompt from the left to max_prompt_length, then each completion on the right so prompt + it <= max_length."""
    prompt, chosen, rejected = pair.prompt, pair.chosen, pair.rejected
    if max_prompt_length is not None and len(prompt) > max_prompt_length:
        prompt = prompt[len(prompt) - max_prompt_length:] if max_prompt_length > 0 else []
        report.prompts_truncated += 1
    if max_length is not None:
        room = max_length - len(prompt)
        if len(chosen) > room or len(rejected) > room:
            report.completions_truncated += 1
            chosen, rejected = chosen[:max(room, 0)], rejected[:max(room, 0)]
    if not prompt or not chosen or not rejected:
        report.dropped.append(pair.index)
        return None
    return TokenizedPair(prompt, chosen, rejected, pair.index)


def tokenize_pairs(pairs: list[dict], tokenizer, template: str, max_length: int | None = 1024,
                   max_prompt_length: int | None = 512, source: str | None = None,
                   desc: str = "tokenizing pairs") -> tuple[list[TokenizedPair], TruncationReport]:
    """Tokenize and truncate every pair; pairs with nothing left to score are dropped and counted."""
    report = TruncationReport(pairs=len(pairs))
    out = []
    for i, pair in enumerate(tqdm(pairs, desc=desc, leave=False, disable=len(pairs) < 200)):
        kept = truncate(tokenize_pair(pair, tokenizer, template, i, source), max_length, max_prompt_length, report)
        if kept is not None:
            out.append(kept)
    return out, report
