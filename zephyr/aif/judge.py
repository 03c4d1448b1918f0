"""The judge's three kinds of calls over a batch of prompts, each batch sent together (`judge.chat`: bounded
concurrency, retries), each result a row of the stage's resumable file.

A prompt item: {"prompt_index", "instruction", "world_knowledge", "completions": [{"index", "model",
"principle", "custom_system_prompt", "response"}, ...]} with the completions in slot order.
"""

from __future__ import annotations

from ..data.binarize import row_rng
from . import rubric


def shown_order(seed: int, prompt_index: int, aspect: str, k: int) -> list[int]:
    """The completions' order as text_1..text_k for one aspect call (one random permutation, as UltraFeedback)."""
    order = list(range(k))
    row_rng(seed, f"order\x00{prompt_index}\x00{aspect}").shuffle(order)
    return order


def aspect_rows(judge, texts, todo: list[tuple[dict, str]], seed: int, max_tokens: int,
                grammar_chars: int = 0) -> list[dict]:
    """One call per (prompt item, aspect); annotations mapped back to slot order, None when unparsable.
    `grammar_chars` > 0: each request carries the aspect's grammar (rationales of at most that many characters)."""
    calls = []
    for item, aspect in todo:
        responses = [c["response"] for c in item["completions"]]
        order = shown_order(seed, item["prompt_index"], aspect, len(responses))
        request = rubric.aspect_request(texts, aspect, item["instruction"], [responses[o] for o in order],
                                        item.get("world_knowledge"), max_tokens)
        request = rubric.with_grammar(request, grammar_chars and rubric.aspect_grammar(aspect, grammar_chars))
        index = item["prompt_index"] * len(rubric.ASPECTS) + rubric.ASPECTS.index(aspect)
        calls.append(({"index": index, "prompt_index": item["prompt_index"], "aspect": aspect, "order": order},
                      request))
    rows = []
    for (row, _), reply in zip(calls, judge.chat([request for _, request in calls])):
        shown = rubric.parse_aspect(reply.text, row["aspect"])
        annotations = None
        if shown is not None:
            annotations = [shown[row["order"].index(slot)] for slot in range(len(row["order"]))]
        rows.append({**row, "judge_output": reply.text, "annotations": annotations})
    return rows


def critique_rows(judge, texts, todo: list[tuple[dict, dict]], max_tokens: int,
                  grammar_chars: int = 0) -> list[dict]:
    """One call per (prompt item, completion): critique and overall_score (None when unparsable)."""
    grammar = grammar_chars and rubric.critique_grammar(grammar_chars)
    calls = [(c["index"], rubric.with_grammar(rubric.critique_request(
        texts, item["instruction"], c["principle"], c["custom_system_prompt"], c["response"], max_tokens), grammar))
             for item, c in todo]
    rows = []
    for (index, _), reply in zip(calls, judge.chat([request for _, request in calls])):
        parsed = rubric.parse_critique(reply.text)
        critique, score = parsed if parsed else (None, None)
        rows.append({"index": index, "judge_output": reply.text, "critique": critique, "overall_score": score})
    return rows


def rescore_rows(judge, texts, todo: list[tuple[dict, dict, str]], grammar: bool = False) -> list[dict]:
    """[(prompt item, completion, critique)] whose overall_score 10 is re-asked -> rows with the new score."""
    requests = [rubric.with_grammar(rubric.rescore_request(texts, item["instruction"], c["principle"],
                                                           c["custom_system_prompt"], c["response"], critique),
                                    grammar and rubric.RESCORE_GRAMMAR) for item, c, critique in todo]
    return [{"index": c["index"], "judge_output": reply.text, "overall_score": rubric.parse_rescore(reply.text)}
            for (_, c, _), reply in zip(todo, judge.chat(requests))]
