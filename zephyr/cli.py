"""`zephyr <command> ...`: one thin entry point per pipeline stage.

Each command lives in its own module with a `main(argv) -> int`; this file only dispatches, so importing
the CLI stays cheap (torch and transformers load only for the command that needs them).
"""

from __future__ import annotations

import importlib
import sys

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


def usage() -> str:
    lines = ["usage: zephyr <command> [--config RECIPE.yaml] [--FIELD VALUE ...]", "", "commands:"]
    lines += [f"  {name:<9} {meaning}" for name, (_, meaning) in COMMANDS.items()]
    lines += ["", "`zephyr <command> --help` lists every field with its default and meaning."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"zephyr: unknown command '{name}'.{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            print(f"zephyr: '{name}' is not available in this build ({module_name} missing)", file=sys.stderr)
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except ZephyrError as err:
        print(f"zephyr {name}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nzephyr {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
