"""`zephyr generate`: JSONL of conversations in, JSONL with the model's replies out.

Input lines: {"messages": [...]} (a conversation ending with a user turn), or {"prompt": "text"}.
Output lines: the input row plus "index" (its 0-based row) and "reply"; "messages" gains the reply.
Each batch is appended and fsync'ed (`data.io.appending`), so after a kill the next run skips the rows already
written and a torn last line is cut away. A row's replies depend only on the seed and its batch, not on earlier
runs.

An output is bound to what made it: `<output>.settings.json` records the input file's SHA-256, the model and
every setting that changes a reply. Resuming with anything different is refused (another --output, or
--overwrite to start again), so an output never mixes replies of two inputs, models or sampling settings.

Every prompt is tokenized and checked against the model's context window before the model loads: a prompt
that leaves no room for max_new_tokens is an error naming its file and line (or, with --skip_invalid,
skipped and counted); a prompt far too long is caught from its length in characters without tokenizing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .chat_template import prompt_ids
from .config import field, parse_args
from .data.io import Where, appending, check_output_file, disk_full_is_reported, finished_rows, read_rows
from .data.schemas import prompt_conversation
from .errors import ConfigError, DataError
from .sampling import Sampling, SamplingConfig, batched, generate_from_ids

# the fields of a GenerateConfig that change the replies, recorded in the settings file
MODEL_FIELDS = ("model", "revision", "dtype", "chat_template", "load_in_4bit")
RUN_FIELDS = ("batch_size", "skip_invalid")


@dataclasses.dataclass
class GenerateConfig(SamplingConfig):
    """Generate a reply for every conversation of a JSONL file (resumable)."""

    input: str = field("", help="JSONL file: one {'messages': [...]} or {'prompt': '...'} per line")
    output: str = field("", help="JSONL file to write (appended to when resuming)")
    batch_size: int = field(8, help="conversations generated together")
    skip_invalid: bool = field(False, help="skip (and count) bad input lines and prompts too long for the model "
                                           "instead of stopping at the first")
    overwrite: bool = field(False, help="start the output again even if it holds replies (of other settings)")

    def __post_init__(self):
        super().__post_init__()
        if not self.input or not self.output:
            raise ConfigError("both --input and --output are needed")
        if self.batch_size < 1:
            raise ConfigError(f"--batch_size: must be >= 1, got {self.batch_size}")
        check_output_file(self.output, "output")
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise ConfigError("--output: is the input file; write the replies to another file")


@dataclasses.dataclass
class Conversation:
    where: Where
    row: dict
    messages: list[dict]


def read_conversations(path: str, skip_invalid: bool = False) -> tuple[list[Conversation], int]:
    """-> (conversations, number of skipped lines). Errors name the file, line and field."""
    rows, skipped = [], 0
    for where, row in read_rows(path):
        try:
            rows.append(Conversation(where, row, conversation(row, where)))
        except DataError:
            if not skip_invalid:
                raise
            skipped += 1
    return rows, skipped


def conversation(row: Any, where: Where) -> list[dict]:
    """The conversation to reply to: the row's `messages`, or its `prompt` as one user turn."""
    if isinstance(row, DataError):
        raise row
    if not isinstance(row, dict):
        raise where.error("each line must be a JSON object")
    if "messages" in row:
        messages = row["messages"]
    elif isinstance(row.get("prompt"), str):
        messages = [{"role": "user", "content": row["prompt"]}]
    else:
        raise where.error("missing (need 'messages' or a string 'prompt')", "messages")
    return prompt_conversation(messages, where, "messages")


def fingerprint(config: GenerateConfig) -> dict:
    """What makes the replies: the input's bytes, the model and every sampling and batching setting."""
    digest = hashlib.sha256()
    with open(config.input, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    settings = {name: getattr(config, name) for name in MODEL_FIELDS + RUN_FIELDS}
    settings.update({f.name: getattr(config, f.name) for f in dataclasses.fields(Sampling)})
    return {"input_sha256": digest.hexdigest(), **settings}


def settings_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".settings.json")


def bind_output(config: GenerateConfig) -> None:
    """Refuse an output that holds replies made from another input, model or settings; record ours."""
    output, record = Path(config.output), settings_path(config.output)
    if config.overwrite:
        output.unlink(missing_ok=True)
        record.unlink(missing_ok=True)
    ours = fingerprint(config)
    fix = "pass another --output, or --overwrite to replace its replies"
    if output.exists() and output.stat().st_size > 0:
        if not record.is_file():
            raise ConfigError(f"--output: {output} already holds rows but no {record.name} saying which "
                              f"input, model and settings made them; {fix}")
        try:
            theirs = json.loads(record.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigError(f"--output: {record} is damaged ({err}); {fix}") from None
        differ = [name for name in ours if theirs.get(name) != ours[name]]
        if differ:
            what = "; ".join(f"{name}: {theirs.get(name)!r} there, {ours[name]!r} now" for name in differ)
            raise ConfigError(f"--output: {output} holds replies made with other settings ({what}); {fix}")
    with disk_full_is_reported(record, "nothing was generated yet"):
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({**ours, "input": str(config.input)}, indent=1), encoding="utf-8")


def encode_prompts(conversations: list[Conversation], todo: list[int], tokenizer, config: GenerateConfig,
                   context: int | None) -> tuple[dict[int, list[int]], int]:
    """-> ({row: prompt ids}, number skipped as too long). A prompt fits when it leaves max_new_tokens of room
    in the context. No token stands for more characters than its own vocabulary entry has, so a text longer than
    context x the longest entry cannot fit: such a prompt is refused without tokenizing it."""
    longest_token = max(len(token) for token in tokenizer.get_vocab())
    encoded, skipped = {}, 0
    for i in tqdm(todo, desc="tokenize", unit="conv", disable=None, leave=False):
        item = conversations[i]
        problem = None
        if context is not None:
            room = context - config.max_new_tokens
            chars = sum(len(m["content"]) for m in item.messages)
            if chars > 2 * context * longest_token:  # 2: a normalizer may merge a few characters
                problem = (f"the prompt has {chars} characters, far more than the model's context of {context} "
                           f"tokens can hold")
            else:
                ids = prompt_ids(item.messages, tokenizer, config.chat_template)
                if len(ids) > room:
                    problem = (f"the prompt is {len(ids)} tokens; with max_new_tokens {config.max_new_tokens} "
                               f"it does not fit the model's context of {context} tokens")
                else:
                    encoded[i] = ids
        else:
            encoded[i] = prompt_ids(item.messages, tokenizer, config.chat_template)
        if problem is not None:
            if not config.skip_invalid:
                raise item.where.error(f"{problem}; shorten it, lower --max_new_tokens, or pass --skip_invalid",
                                       "messages" if "messages" in item.row else "prompt")
            skipped += 1
    return encoded, skipped


def run(config: GenerateConfig) -> dict:
    from .models import context_length, load_model, load_tokenizer

    conversations, skipped = read_conversations(config.input, config.skip_invalid)
    bind_output(config)
    output = Path(config.output)
    done = finished_rows(output)
    todo = [i for i in range(len(conversations)) if i not in done]
    report = {"rows": len(conversations), "skipped_invalid": skipped, "skipped_too_long": 0,
              "already_done": len(conversations) - len(todo), "generated": 0}
    if not todo:
        return report
    tokenizer = load_tokenizer(config)
    encoded, report["skipped_too_long"] = encode_prompts(conversations, todo, tokenizer, config,
                                                         context_length(config))
    todo = [i for i in todo if i in encoded]
    if not todo:
        return report
    model = load_model(config, tokenizer).eval()
    with appending(output) as append, tqdm(total=len(todo), desc="generate", unit="conv") as bar:
        for start, chunk in batched(todo, config.batch_size):
            # seed by the batch's first row so a resumed run reproduces an uninterrupted one
            replies = generate_from_ids(model, tokenizer, [encoded[i] for i in chunk], config,
                                        config.chat_template, seed=config.seed + chunk[0])
            append({**conversations[i].row, "index": i,
                    "messages": [*conversations[i].messages, {"role": "assistant", "content": reply}],
                    "reply": reply} for i, reply in zip(chunk, replies))
            report["generated"] += len(chunk)
            bar.update(len(chunk))
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(GenerateConfig, argv, prog="zephyr generate")
    report = run(config)
    print(f"zephyr generate: {report['generated']} generated, {report['already_done']} already done, "
          f"{report['skipped_invalid']} invalid lines and {report['skipped_too_long']} too-long prompts skipped "
          f"-> {config.output}")
    return 0
