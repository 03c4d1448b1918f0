"""`zephyr generate`: JSONL of conversations in, JSONL with the model's replies out.

Input lines: {"messages": [...]} (a conversation ending with a user turn), or {"prompt": "text"}.
Output lines: the input row plus "index" (its 0-based row) and "reply"; "messages" gains the reply.
Each batch is flushed and fsync'ed, so after a kill the next run skips the rows already written and a
torn last line is cut away. A row's replies depend only on the seed and its batch, not on earlier runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from tqdm import tqdm

from .chat_template import validate
from .config import field, parse_args
from .chat_template import ConversationError
from .errors import DataError
from .sampling import SamplingConfig, batched, generate_batch


@dataclasses.dataclass
class GenerateConfig(SamplingConfig):
    """Generate a reply for every conversation of a JSONL file (resumable)."""

    input: str = field("", help="JSONL file: one {'messages': [...]} or {'prompt': '...'} per line")
    output: str = field("", help="JSONL file to write (appended to when resuming)")
    batch_size: int = field(8, help="conversations generated together")
    skip_invalid: bool = field(False, help="skip (and count) bad input lines instead of stopping at the first")


def read_conversations(path: str, skip_invalid: bool = False) -> tuple[list[tuple[dict, list[dict]]], int]:
    """-> ([(row, messages)], number of skipped lines). Errors name the file, line and field."""
    rows, skipped = [], 0
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError as err:
        raise DataError("file not found", path) from err
    with handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise DataError("each line must be a JSON object", path, line_no)
                if "messages" in row:
                    messages = row["messages"]
                elif isinstance(row.get("prompt"), str):
                    messages = [{"role": "user", "content": row["prompt"]}]
                else:
                    raise DataError("missing (need 'messages' or a string 'prompt')", path, line_no, "messages")
                try:
                    validate(messages)
                except ConversationError as err:
                    raise DataError(err.problem, path, line_no, "messages") from err
                if messages[-1]["role"] != "user":
                    raise DataError("the last message must be a user turn to reply to", path, line_no, "messages")
            except json.JSONDecodeError as err:
                error = DataError(f"not valid JSON ({err.msg} at column {err.colno})", path, line_no)
                if not skip_invalid:
                    raise error from err
                skipped += 1
                continue
            except DataError:
                if not skip_invalid:
                    raise
                skipped += 1
                continue
            rows.append((row, messages))
    return rows, skipped


def finished_rows(path: Path) -> set[int]:
    """Indices already written; a torn last line from a kill is removed so appending stays valid JSONL."""
    if not path.exists():
        return set()
    done, good_bytes = set(), 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                done.add(int(json.loads(raw)["index"]))
            except (ValueError, KeyError, TypeError):
                break
            good_bytes += len(raw)
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return done


def run(config: GenerateConfig) -> dict:
    from .models import load_model, load_tokenizer

    if not config.input or not config.output:
        raise DataError("both --input and --output are needed")
    rows, skipped = read_conversations(config.input, config.skip_invalid)
    output = Path(config.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = finished_rows(output)
    todo = [i for i in range(len(rows)) if i not in done]
    report = {"rows": len(rows), "skipped_invalid": skipped, "already_done": len(rows) - len(todo), "generated": 0}
    if todo:
        tokenizer = load_tokenizer(config)
        model = load_model(config, tokenizer).eval()
        with open(output, "a", encoding="utf-8") as handle, tqdm(total=len(todo), desc="generate",
                                                                 unit="conv") as bar:
            for start, chunk in batched(todo, config.batch_size):
                # seed by the batch's first row so a resumed run reproduces an uninterrupted one
                replies = generate_batch(model, tokenizer, [rows[i][1] for i in chunk], config,
                                         config.chat_template, seed=config.seed + chunk[0])
                for i, reply in zip(chunk, replies):
                    row, messages = rows[i]
                    record = {**row, "index": i, "messages": [*messages, {"role": "assistant", "content": reply}],
                              "reply": reply}
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                report["generated"] += len(chunk)
                bar.update(len(chunk))
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(GenerateConfig, argv, prog="zephyr generate")
    report = run(config)
    print(f"zephyr generate: {report['generated']} generated, {report['already_done']} already done, "
          f"{report['skipped_invalid']} invalid lines skipped -> {config.output}")
    return 0
