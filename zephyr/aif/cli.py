"""`zephyr aif`: prompts -> completions from a pool -> UltraFeedback judging -> preference pairs.

Output folder (every stage resumable: a killed run continues where it stopped, nothing is asked twice):
  settings.json        what the folder was made with; a run with other result-changing settings is refused
  completions.jsonl    one row per completion: prompt, slot, model, principle and its system prompt, reply
  aspects.jsonl        one judge call per (prompt, aspect) with all K completions: reply, annotations
  critiques.jsonl      one judge call per completion: critique, overall_score
  rescores.jsonl       the overall_score fix's re-asked 10s
  rated.jsonl          UltraFeedback-shaped rows (instruction, messages, completions with annotations,
                       critique, overall_score, fine-grained_score), rebuilt from the files above
  pairs.jsonl          binarized pairs (--rule), prompt/chosen/rejected as full message lists
  report.json          `summary` (the counts below, always all present) and every finer count

The summary: prompts; completions (of prompts whose K completions are all written); judged (completions
through every judge call); judge_calls and unparsable (judge replies that did not parse: aspect calls,
critiques and re-asked scores, also given apart); pairs; dropped_ties (rows dropped because all candidates
tie: mean_rating only); tied_pairs_kept (overall_score keeps a rejected that ties the chosen, as the H4
release did); dropped_fewer_than_2_rated.
Each stage says on stderr when it starts ("zephyr aif: stage ..."), so a supervisor can tell where a run is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ..config import field, parse_args
from ..data.binarize import RULES, binarized_record, row_rng
from ..data.io import appending, finished_rows, read_objects, write_rows
from ..errors import ConfigError, DataError
from ..generate import read_conversations
from ..judge import JudgeConfig, check_judge, make_judge
from . import rubric, ultrafeedback
from .answer import Engines, Job, replies
from .judge import aspect_rows, critique_rows, rescore_rows
from .pool import draw_answerers, draw_principle, parse_pool, with_system_prompt


@dataclasses.dataclass
class AIFConfig(JudgeConfig):
    """AI feedback as UltraFeedback made it: a pool answers, a judge rates per aspect and critiques, pairs out."""

    prompts: str = field("", help="JSONL of prompts: {'prompt': '...'} or {'messages': [...ending with a user turn]}, "
                                  "optional 'source' (sharegpt, flan, ...: picks the principles) and "
                                  "'world_knowledge' or 'correct_answers'/'incorrect_answers' (truthfulness)")
    max_prompts: int = field(0, help="use only the first N prompts of the file (0 = all)")
    pool: list[str] = field([], help="answerers: MODEL or key=value,... (model, url, name, temperature, top_p, "
                                     "top_k, max_new_tokens, engine, chat_template); e.g. --pool embedded "
                                     "'embedded,temperature=0.5,name=cool' 'url=https://api.openai.com/v1,model=gpt-4'")
    completions_per_prompt: int = field(4, help="K answerers drawn per prompt (UltraFeedback's templates rate 4)")
    temperature: float = field(1.0, help="answerers' default temperature (UltraFeedback: 1)")
    top_p: float = field(1.0, help="answerers' default top-p (UltraFeedback: 1)")
    top_k: int = field(0, help="answerers' default top-k (0 = off, as UltraFeedback)")
    max_new_tokens: int = field(1024, help="answerers' default reply length limit (UltraFeedback: 1024)")
    rule: str = field("overall_score", help="binarization: overall_score (HuggingFaceH4/ultrafeedback_binarized) "
                                            "or mean_rating (Argilla's cleaned release)")
    ultrafeedback_dir: str = field("", help="local copy of UltraFeedback's texts (a clone of OpenBMB/UltraFeedback "
                                            "or a folder of its strings); default: download the pinned commit")
    judge_max_tokens: int = field(rubric.ASPECT_MAX_TOKENS, help="tokens for an aspect call's 4 rationales")
    critique_max_tokens: int = field(rubric.CRITIQUE_MAX_TOKENS, help="tokens for a critique")
    judge_grammar: bool = field(False, help="send each judge request with a GBNF grammar of the reply's shape that "
                                            "UltraFeedback's parser reads (a judge served by `zephyr serve X.gguf "
                                            "--engine llama.cpp`, or llama.cpp's server); for small judges, whose "
                                            "free replies rarely parse. Prompts are unchanged; ratings are the "
                                            "judge's own pick")
    judge_rationale_chars: int = field(200, help="with --judge_grammar: longest rationale or critique, in characters "
                                                 "(four rationales must fit --judge_max_tokens)")
    output_dir: str = field("runs/aif", help="where completions, ratings, pairs and the report go")
    batch_size: int = field(16, help="prompts per step; each step's results are saved before the next")
    max_num_seqs: int = field(32, help="completions decoded together by a local engine")
    seed: int = field(42, help="seed of the pool draw, principles, per-request sampling, shuffles and pairing")
    skip_invalid: bool = field(False, help="skip (and count) bad prompt lines instead of stopping")

    def __post_init__(self):
        super().__post_init__()
        if not self.prompts:
            raise ConfigError("--prompts: needed (a JSONL file of prompts)")
        if self.completions_per_prompt != rubric.TEXTS_PER_CALL:
            raise ConfigError(f"--completions_per_prompt: UltraFeedback's rubric templates rate exactly "
                              f"{rubric.TEXTS_PER_CALL} completions at once, got {self.completions_per_prompt}")
        if self.rule not in RULES:
            raise ConfigError(f"--rule: {self.rule!r} is not one of {', '.join(RULES)}")
        if self.max_prompts < 0:
            raise ConfigError(f"--max_prompts: must be 0 (all) or more, got {self.max_prompts}")
        if self.judge_grammar and not self.judge_url:
            raise ConfigError("--judge_grammar: needs a judge behind --judge_url that takes a `grammar` (zephyr serve "
                              "X.gguf --engine llama.cpp, or llama.cpp's server); a local --judge cannot")
        for name in ("batch_size", "max_num_seqs", "judge_max_tokens", "critique_max_tokens", "judge_rationale_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name}: must be at least 1, got {getattr(self, name)}")
        self.answerers = parse_pool(self.pool, {"temperature": self.temperature, "top_p": self.top_p,
                                                "top_k": self.top_k, "max_new_tokens": self.max_new_tokens})
        if len(self.answerers) < self.completions_per_prompt:
            raise ConfigError(f"--pool: {len(self.answerers)} answerers, but each prompt needs "
                              f"{self.completions_per_prompt} different ones")
        check_judge(self)


def world_knowledge(row: dict) -> str | None:
    """Reference answers for the truthfulness call, filled as UltraFeedback's annotate_preference.py fills them."""
    if isinstance(row.get("world_knowledge"), str):
        return row["world_knowledge"] or None
    if "correct_answers" in row and "incorrect_answers" in row:
        return "\n".join(["a subset of correct answers: " + str(row["correct_answers"]),
                          "a subset of incorrect_answers: " + str(row["incorrect_answers"])])
    if row.get("correct_answers"):
        return str(row["correct_answers"])
    return None


def settings_fingerprint(config: AIFConfig) -> dict:
    prompts = hashlib.sha256(Path(config.prompts).read_bytes()).hexdigest()
    return {"prompts_sha256": prompts, "max_prompts": config.max_prompts, "pool": [dataclasses.asdict(a) for a in config.answerers],
            "completions_per_prompt": config.completions_per_prompt, "seed": config.seed,
            "judge": config.judge or f"{config.judge_url} {config.judge_model}",
            "judge_max_tokens": config.judge_max_tokens, "critique_max_tokens": config.critique_max_tokens,
            **({"judge_grammar_chars": config.judge_rationale_chars} if config.judge_grammar else {})}


def claim_folder(out: Path, config: AIFConfig) -> None:
    path = out / "settings.json"
    current = settings_fingerprint(config)
    if path.exists():
        saved = json.loads(path.read_text())
        differ = sorted(k for k in current.keys() | saved.keys() if current.get(k) != saved.get(k))
        if differ:
            raise ConfigError(f"--output_dir: {out} holds a run made with other settings ({', '.join(differ)}); "
                              "choose another folder or remove it")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=1))


def read_prompts(config: AIFConfig, counts: Counter) -> list[dict]:
    rows, skipped = read_conversations(config.prompts, config.skip_invalid)
    counts["aif_invalid_prompts_skipped"] = skipped
    rows = rows[:config.max_prompts or None]
    if not rows:
        raise DataError("no prompts in the file (it is empty" + (" once invalid lines are skipped)" if skipped else ")"),
                        config.prompts)
    return [{"prompt_index": i, "messages": c.messages, "instruction": rubric.instruction_text(c.messages),
             "source": c.row.get("source") if isinstance(c.row.get("source"), str) else "",
             "world_knowledge": world_knowledge(c.row)} for i, c in enumerate(rows)]


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def request_seed(seed: int, index: int) -> int:
    return row_rng(seed, f"sample\x00{index}").getrandbits(63)


def stage(name: str) -> None:
    print(f"zephyr aif: stage {name}", file=sys.stderr, flush=True)


def answer_stage(config: AIFConfig, prompts: list[dict], texts, path: Path) -> None:
    k = config.completions_per_prompt
    done = finished_rows(path)
    jobs, meta = [], {}
    for item in prompts:
        i = item["prompt_index"]
        for slot, answerer in enumerate(draw_answerers(config.answerers, k, config.seed, i)):
            index = i * k + slot
            if index in done:
                continue
            principle, system_prompt = draw_principle(item["source"], texts["principles"], config.seed, i, slot)
            jobs.append(Job(index, answerer, with_system_prompt(item["messages"], system_prompt),
                            request_seed(config.seed, index)))
            meta[index] = {"index": index, "prompt_index": i, "slot": slot, "model": answerer.name,
                           "principle": principle, "custom_system_prompt": system_prompt}
    if not jobs:
        return
    stage("completions")
    with Engines(config.max_num_seqs, config.judge_concurrency, config.judge_api_key_env,
                 config.allow_insecure_judge) as engines, appending(path) as append, \
            tqdm(total=len(jobs), desc="answer", unit="completion") as bar:
        for chunk in chunks(jobs, config.batch_size * k):
            texts_by_index = replies(engines, chunk)
            append({**meta[job.index], "response": texts_by_index[job.index]} for job in chunk)
            bar.update(len(chunk))


def load_items(prompts: list[dict], completions: Path, k: int) -> list[dict]:
    by_index = {row["index"]: row for _, row in read_objects(completions)}
    items = []
    for item in prompts:
        slots = [by_index.get(item["prompt_index"] * k + s) for s in range(k)]
        if all(slots):
            items.append({**item, "completions": slots})
    return items


def judged_stage(name: str, path: Path, todo_keys: list, make_rows, batch: int) -> None:
    """Run `make_rows(chunk)` over the keys not yet in `path`, appending each chunk's rows."""
    done = finished_rows(path)
    todo = [key for key in todo_keys if key[0] not in done]
    if not todo:
        return
    stage(name)
    with appending(path) as append, tqdm(total=len(todo), desc=name, unit="call") as bar:
        for chunk in chunks(todo, batch):
            append(make_rows(chunk))
            bar.update(len(chunk))


def judge_stages(config: AIFConfig, items: list[dict], texts, out: Path) -> dict:
    """Aspect calls, then critiques, then the re-asked 10s; the judge is made only when a call is left."""
    judge = None

    def the_judge():
        nonlocal judge
        judge = judge or make_judge(config)
        return judge

    n = len(rubric.ASPECTS)
    batch = config.batch_size
    grammar_chars = config.judge_rationale_chars if config.judge_grammar else 0
    aspect_keys = [(item["prompt_index"] * n + a, (item, aspect)) for item in items
                   for a, aspect in enumerate(rubric.ASPECTS)]
    judged_stage("judge aspects", out / "aspects.jsonl", aspect_keys,
                 lambda chunk: aspect_rows(the_judge(), texts, [todo for _, todo in chunk], config.seed,
                                           config.judge_max_tokens, grammar_chars), batch * n)
    critique_keys = [(c["index"], (item, c)) for item in items for c in item["completions"]]
    judged_stage("critique", out / "critiques.jsonl", critique_keys,
                 lambda chunk: critique_rows(the_judge(), texts, [todo for _, todo in chunk],
                                             config.critique_max_tokens, grammar_chars), batch * n)
    aspects = {row["index"]: row for _, row in read_objects(out / "aspects.jsonl")} if items else {}
    critiques = {row["index"]: row for _, row in read_objects(out / "critiques.jsonl")} if items else {}
    rescore_todo = []
    for item in items:
        annotations = completion_annotations(item, aspects)
        for slot, completion in enumerate(item["completions"]):
            critique = critiques[completion["index"]]
            action = rubric.rescore_action(critique["overall_score"], rubric.fine_grained_score(annotations[slot]))
            if action == "rescore":
                rescore_todo.append((completion["index"], (item, completion, critique["critique"])))
    judged_stage("rescore", out / "rescores.jsonl", rescore_todo,
                 lambda chunk: rescore_rows(the_judge(), texts, [todo for _, todo in chunk], config.judge_grammar),
                 batch * n)
    rescores = {row["index"]: row for _, row in read_objects(out / "rescores.jsonl")} if rescore_todo else {}
    return {"aspects": aspects, "critiques": critiques, "rescores": rescores}


def completion_annotations(item: dict, aspects: dict) -> list[dict]:
    """Per slot: {aspect: annotation or None (the call was unparsable)}."""
    n = len(rubric.ASPECTS)
    per_slot = [{} for _ in item["completions"]]
    for a, aspect in enumerate(rubric.ASPECTS):
        row = aspects[item["prompt_index"] * n + a]
        for slot in range(len(per_slot)):
            per_slot[slot][aspect] = row["annotations"][slot] if row["annotations"] else None
    return per_slot


def rated_rows(items: list[dict], judged: dict, counts: Counter) -> list[dict]:
    rows = []
    n = len(rubric.ASPECTS)
    for item in items:
        counts["aif_aspect_calls"] += n
        counts["aif_aspect_calls_unparsable"] += sum(
            judged["aspects"][item["prompt_index"] * n + a]["annotations"] is None for a in range(n))
        completions = []
        for slot, annotations in enumerate(completion_annotations(item, judged["aspects"])):
            completion = item["completions"][slot]
            critique = judged["critiques"][completion["index"]]
            counts["aif_critiques"] += 1
            counts["aif_critiques_unparsable"] += critique["overall_score"] is None
            score, fine = critique["overall_score"], rubric.fine_grained_score(annotations)
            action = rubric.rescore_action(score, fine)
            if action == "flip":
                score = 1.0
                counts["aif_overall_score_10_flipped"] += 1
            elif action == "rescore":
                score = judged["rescores"][completion["index"]]["overall_score"]
                counts["aif_overall_score_10_rescored"] += 1
                counts["aif_rescores_unparsable"] += score is None
            unparsable = [a for a, value in annotations.items() if value is None]
            completions.append({
                "model": completion["model"], "principle": completion["principle"],
                "custom_system_prompt": completion["custom_system_prompt"], "response": completion["response"],
                # an unparsable call leaves no rating: the aspect is absent, and listed under `unparsable`
                "annotations": {a: value for a, value in annotations.items() if value is not None},
                "unparsable": unparsable, "critique": critique["critique"], "overall_score": score,
                "fine-grained_score": fine})
        rows.append({"index": item["prompt_index"], "source": item["source"], "instruction": item["instruction"],
                     "messages": item["messages"], "models": [c["model"] for c in completions],
                     "completions": completions})
    return rows


def pairs_from(rated: Path, rule: str, seed: int, counts: Counter) -> list[dict]:
    pairs = []
    for where, row in read_objects(rated):
        if rule == "mean_rating":  # a completion with an unparsable aspect call has no full mean: not a candidate
            kept = [c for c in row["completions"] if not c["unparsable"]]
            counts["aif_completions_left_out_unparsable"] += len(row["completions"]) - len(kept)
            row = {**row, "completions": kept}
        pair = binarized_record(row, where, seed, counts, rule)
        if pair is not None:
            pairs.append(pair)
    return pairs


def summary(counts: Counter) -> dict:
    """The headline counts, every one present (0 when nothing happened)."""
    unparsable = {"aspect_calls": counts["aif_aspect_calls_unparsable"],
                  "critiques": counts["aif_critiques_unparsable"], "rescores": counts["aif_rescores_unparsable"]}
    return {"prompts": counts["aif_prompts"], "completions": counts["aif_completions"],
            "judged": counts["aif_critiques"],
            "judge_calls": counts["aif_aspect_calls"] + counts["aif_critiques"]
            + counts["aif_overall_score_10_rescored"],
            "unparsable": sum(unparsable.values()), **{f"unparsable_{k}": v for k, v in unparsable.items()},
            "pairs": counts["aif_pairs_written"], "dropped_ties": counts["binarize_dropped_all_tied"],
            "tied_pairs_kept": counts["binarize_tied_pairs"],
            "dropped_fewer_than_2_rated": counts["binarize_dropped_fewer_than_2_rated"]}


def run(config: AIFConfig) -> dict:
    out = Path(config.output_dir)
    counts: Counter = Counter()
    prompts = read_prompts(config, counts)
    texts = ultrafeedback.load(config.ultrafeedback_dir)
    claim_folder(out, config)
    counts["aif_prompts"] = len(prompts)
    answer_stage(config, prompts, texts, out / "completions.jsonl")
    items = load_items(prompts, out / "completions.jsonl", config.completions_per_prompt)
    counts["aif_completions"] = sum(len(item["completions"]) for item in items)
    judged = judge_stages(config, items, texts, out)
    stage("binarize")
    rated = out / "rated.jsonl"
    write_rows(rated_rows(items, judged, counts), rated)
    counts["aif_pairs_written"] = write_rows(pairs_from(rated, config.rule, config.seed, counts),
                                             out / "pairs.jsonl")
    report = {"rule": config.rule, "ultrafeedback_texts": texts.origin, "summary": summary(counts),
              **dict(sorted(counts.items()))}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(AIFConfig, argv, prog="zephyr aif")
    report = run(config)
    flat = {**{f"summary.{k}": v for k, v in report["summary"].items()},
            **{k: v for k, v in report.items() if k != "summary"}}
    width = max(map(len, flat))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in flat.items()))
    print(f"zephyr aif: pairs -> {Path(config.output_dir) / 'pairs.jsonl'}")
    return 0

