"""`zephyr generate`: JSONL of conversations in, JSONL with the model's replies out.

Input lines: {"messages": [...]} (a conversation ending with a user turn), or {"prompt": "text"}.
Output lines: the input row plus "index" (its 0-based row) and "reply"; "messages" gains the reply.
Each batch is appended and fsync'ed (`data.io.appending`), so after a kill the next run skips the rows already
written and a torn last line is cut away. A row's replies depend only on the seed and its batch, not on earlier
runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .chat_template import ConversationError, validate
from .config import field, parse_args
from .data.io import Where, appending, finished_rows, read_rows
from .errors import ConfigError, DataError
from .sampling import SamplingConfig, batched, generate_batch


@dataclasses.dataclass
class GenerateConfig(SamplingConfig):
    """Generate a reply for every conversation of a JSONL file (resumable)."""

    input: str = field("", help="JSONL file: one {'messages': [...]} or {'prompt': '...'} per line")
    output: str = field("", help="JSONL file to write (appended to when resuming)")
    batch_size: int = field(8, help="conversations generated together")
    skip_invalid: bool = field(False, help="skip (and count) bad input lines instead of stopping at the first")

    def __post_init__(self):
        super().__post_init__()
        if not self.input or not self.output:
            raise ConfigError("both --input and --output are needed")


def read_conversations(path: str, skip_invalid: bool = False) -> tuple[list[tuple[dict, list[dict]]], int]:
    """-> ([(row, messages)], number of skipped lines). Errors name the file, line and field."""
    rows, skipped = [], 0
    for where, row in read_rows(path):
        try:
            rows.append((row, conversation(row, where)))
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
    try:
        validate(messages)
    except ConversationError as err:
        raise where.error(err.problem, "messages") from err
    if messages[-1]["role"] != "user":
        raise where.error("the last message must be a user turn to reply to", "messages")
    return messages


def run(config: GenerateConfig) -> dict:
    from .models import load_model, load_tokenizer

    rows, skipped = read_conversations(config.input, config.skip_invalid)
    output = Path(config.output)
    done = finished_rows(output)
    todo = [i for i in range(len(rows)) if i not in done]
    report = {"rows": len(rows), "skipped_invalid": skipped, "already_done": len(rows) - len(todo), "generated": 0}
    if todo:
        tokenizer = load_tokenizer(config)
        model = load_model(config, tokenizer).eval()
        with appending(output) as append, tqdm(total=len(todo), desc="generate", unit="conv") as bar:
            for start, chunk in batched(todo, config.batch_size):
                # seed by the batch's first row so a resumed run reproduces an uninterrupted one
                replies = generate_batch(model, tokenizer, [rows[i][1] for i in chunk], config,
                                         config.chat_template, seed=config.seed + chunk[0])
                append({**rows[i][0], "index": i, "messages": [*rows[i][1], {"role": "assistant", "content": reply}],
                        "reply": reply} for i, reply in zip(chunk, replies))
                report["generated"] += len(chunk)
                bar.update(len(chunk))
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(GenerateConfig, argv, prog="zephyr generate")
    report = run(config)
    print(f"zephyr generate: {report['generated']} generated, {report['already_done']} already done, "
          f"{report['skipped_invalid']} invalid lines skipped -> {config.output}")
    return 0
