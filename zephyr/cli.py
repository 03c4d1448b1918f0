"""`zephyr <command> ...`: one thin entry point per pipeline stage.

Each command lives in its own module with a `main(argv) -> int`; this file only dispatches, so importing
the CLI stays cheap (torch and transformers load only for the command that needs them).
"""

from __future__ import annotations

import difflib
import importlib
import sys
from functools import partial
from typing import Callable

from .errors import ZephyrError

# name -> (module, one-line meaning), in pipeline order
COMMANDS = {
    "data": ("zephyr.data.cli", "prepare data: mix, binarize UltraFeedback, filter UltraChat, decontaminate"),
    "sft": ("zephyr.sft.cli", "dSFT: supervised fine-tuning on dialogues (assistant-only loss, packed)"),
    "aif": ("zephyr.aif.cli", "AI feedback: generate completions, judge them, binarize into preference pairs"),
    "dpo": ("zephyr.dpo.cli", "dDPO: preference optimisation on chosen/rejected pairs"),
    "run": ("zephyr.pipeline", "the whole recipe folder end to end: SFT -> DPO -> eval -> card -> sample chats"),
    "generate": ("zephyr.generate", "JSONL of conversations in -> JSONL with the model's replies out (resumable)"),
    "chat": ("zephyr.chat", "interactive chat in the terminal, streaming"),
    "eval": ("zephyr.eval.cli", "evaluate: MT-Bench, AlpacaEval, IFEval, preference accuracy"),
    "export": ("zephyr.export", "merge a LoRA adapter into its base and write a plain safetensors checkpoint"),
    "quantize": ("zephyr.quantize.cli", "4-bit AWQ or GGUF export, checked by perplexity"),
    "serve": ("zephyr.serve.cli", "OpenAI-compatible server (vLLM, llama.cpp, or transformers fallback)"),
}


Table = dict[str, tuple[Callable[[list[str]], int | None], str]]  # name -> (main(argv), one-line meaning)


def usage(table: Table, prog: str) -> str:
    lines = [f"usage: {prog} <command> ... [--config RECIPE.yaml] [--FIELD VALUE ...]", "", "commands:"]
    width = max(len(name) for name in table) + 2
    lines += [f"  {name:<{width}}{meaning}" for name, (_, meaning) in table.items()]
    lines += ["", f"`{prog} <command> --help` lists every field with its default and meaning."]
    return "\n".join(lines)


def dispatch(table: Table, argv: list[str] | None = None, prog: str = "zephyr") -> int:
    """Run `table[argv[0]]` on the rest of argv; a user error prints its message (no traceback) and returns 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(table, prog))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in table:
        close = difflib.get_close_matches(name, table, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        print(f"{prog}: unknown command '{name}'{hint}\n\n{usage(table, prog)}", file=sys.stderr)
        return 2
    try:
        return int(table[name][0](rest) or 0)
    except SystemExit as done:  # `--help` prints the fields and exits
        if isinstance(done.code, int):
            return done.code
        raise
    except ZephyrError as err:
        print(f"{prog} {name}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prog} {name}: interrupted", file=sys.stderr)
        return 130


def run_module(module_name: str, argv: list[str]) -> int | None:
    """Import a command's module only when it runs, and call its `main(argv)`."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise ZephyrError(f"not available in this build ({module_name} missing)") from None
        raise
    return module.main(argv)


def main(argv: list[str] | None = None) -> int:
    return dispatch({name: (partial(run_module, module), meaning) for name, (module, meaning) in COMMANDS.items()},
                    argv)


if __name__ == "__main__":
    raise SystemExit(main())
