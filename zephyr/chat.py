"""`zephyr chat`: talk to a model in the terminal, tokens streamed as they are sampled.

Commands: /reset (forget the conversation), /system TEXT (set the system prompt and restart),
/quit (or end of input). Works the same when stdin is a pipe, so it can be scripted and tested.
"""

from __future__ import annotations

import dataclasses
import sys
from threading import Thread
from typing import TextIO

import torch

from .chat_template import prompt_ids
from .config import field, parse_args
from .sampling import SamplingConfig, generate_kwargs

HELP = "commands: /reset  /system TEXT  /quit"


@dataclasses.dataclass
class ChatConfig(SamplingConfig):
    """Interactive chat with streaming replies."""

    system: str = field("", help="system prompt for the conversation (empty: none)")
    prompt: str = field("", help="ask one question, print the reply and exit (non-interactive)")


def stream_reply(model, tokenizer, messages: list[dict], config: SamplingConfig, out: TextIO) -> str:
    """Sample a reply, writing text to `out` as it arrives; returns the whole reply."""
    from transformers import TextIteratorStreamer

    ids = torch.tensor([prompt_ids(messages, tokenizer, config.chat_template)], device=model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                  **generate_kwargs(config, tokenizer, config.chat_template))
    worker = Thread(target=model.generate, kwargs=kwargs, daemon=True)
    worker.start()
    pieces = []
    for piece in streamer:
        pieces.append(piece)
        out.write(piece)
        out.flush()
    worker.join()
    out.write("\n")
    return "".join(pieces).strip()


def chat_loop(model, tokenizer, config: ChatConfig, lines: TextIO = sys.stdin, out: TextIO = sys.stdout) -> list[dict]:
    """Read user turns from `lines` until /quit or EOF; returns the final conversation."""
    system = config.system
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    out.write(f"zephyr chat ({config.model}, template {config.chat_template}). {HELP}\n")
    torch.manual_seed(config.seed)
    while True:
        out.write("you> ")
        out.flush()
        line = lines.readline()
        if not line:
            out.write("\n")
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            messages = [{"role": "system", "content": system}] if system else []
            out.write("(conversation reset)\n")
            continue
        if text.startswith("/system"):
            system = text[len("/system"):].strip()
            messages = [{"role": "system", "content": system}] if system else []
            out.write(f"(system prompt {'set' if system else 'cleared'}; conversation reset)\n")
            continue
        if text.startswith("/"):
            out.write(f"unknown command {text.split()[0]}; {HELP}\n")
            continue
        messages.append({"role": "user", "content": text})
        out.write("assistant> ")
        reply = stream_reply(model, tokenizer, messages, config, out)
        # an empty reply cannot be rendered back into the template; keep the turn well-formed
        messages.append({"role": "assistant", "content": reply or "(no reply)"})
    return messages


def main(argv: list[str] | None = None) -> int:
    from .models import load_model, load_tokenizer

    config = parse_args(ChatConfig, argv, prog="zephyr chat")
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer).eval()
    if config.prompt:
        messages = [{"role": "system", "content": config.system}] if config.system else []
        messages.append({"role": "user", "content": config.prompt})
        torch.manual_seed(config.seed)
        stream_reply(model, tokenizer, messages, config, sys.stdout)
        return 0
    chat_loop(model, tokenizer, config)
    return 0
