"""How `zephyr eval` answers a benchmark's prompts: one model load, then `generator(conversations)` -> replies.

`--engine generate` (the default) runs transformers' `generate` on fixed batches of `--batch_size`, each batch
waiting for its longest reply; `--engine transformers` sends every prompt at once to `zephyr serve`'s batched
decoder, which starts the next prompt as soon as a reply ends. On a 2-core CPU the fixed batches are the faster
(benchmarks/results/eval_engines.md: the decoder at 0.68x on IFEval with the embedded model, whose replies mostly
run to the token limit, so fixed batches waste little). `llama.cpp` (a .gguf --model) and `vllm` are zephyr
serve's other engines. Seeds: --seed plus the reply's position (engines), or plus the batch's first position
(generate).

With a resume file, each reply is appended to it as it finishes, under a fingerprint of the settings and the
model's files; a rerun after a crash answers only what is missing, and replies made with other settings or
other weights are never reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from tqdm import tqdm

from ..errors import ConfigError
from ..sampling import Sampling, batched, generate_batch

ENGINES = ("transformers", "generate", "llama.cpp", "vllm")


def model_signature(model: str) -> list:
    """Name, size and modification time of a local model's files (a retrained folder gets a new signature)."""
    path = Path(model)
    files = sorted(path.iterdir()) if path.is_dir() else [path] if path.is_file() else []
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]


def fingerprint(config, temperature: float) -> str:
    settings = {"model": config.model, "files": model_signature(config.model), "engine": config.engine,
                "dtype": config.dtype, "chat_template": config.chat_template, "temperature": temperature,
                "top_k": config.top_k, "top_p": config.top_p, "max_new_tokens": config.max_new_tokens,
                "repetition_penalty": config.repetition_penalty, "seed": config.seed}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def conversation_key(messages: list[dict]) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


class Generator:
    """generator(conversations, temperature=None) -> replies, in order; `close()` frees the model."""

    def __init__(self, config, resume: Path | None = None):
        self.config, self.resume = config, resume
        self.engine = self.model = self.tokenizer = None
        if config.engine == "generate":
            from ..models import load_model, load_tokenizer

            self.tokenizer = load_tokenizer(config)
            self.model = load_model(config, self.tokenizer).eval()
        else:
            from ..serve.cli import ServeConfig, load_engine
            from ..serve.engine_choice import choose

            try:
                name, _ = choose(config.model, config.engine)
            except ValueError as err:
                raise ConfigError(f"--engine: {err}") from err
            self.engine = load_engine(ServeConfig(model=config.model, engine=name, chat_template=config.chat_template,
                                                  dtype=config.dtype, max_num_seqs=config.batch_size), name)

    def __call__(self, conversations: list[list[dict]], temperature: float | None = None) -> list[str]:
        temperature = self.config.temperature if temperature is None else temperature
        mark = fingerprint(self.config, temperature)
        done = self._done(mark)
        if self.resume and self.resume.is_file() and not self.resume.read_bytes().endswith(b"\n"):
            with self.resume.open("a", encoding="utf-8") as f:  # a killed run's cut line stays on its own
                f.write("\n")
        todo = [i for i, messages in enumerate(conversations) if conversation_key(messages) not in done]
        if len(todo) < len(conversations):
            print(f"zephyr eval: {len(conversations) - len(todo)} replies reused from {self.resume}", flush=True)
        keep = (lambda i, text: self._keep(mark, conversations[i], text)) if self.resume else (lambda i, text: None)
        replies = dict(zip(todo, self._generate([conversations[i] for i in todo], todo, temperature, keep)))
        return [replies[i] if i in replies else done[conversation_key(m)] for i, m in enumerate(conversations)]

    def _generate(self, conversations, positions, temperature, keep) -> list[str]:
        config = dataclasses.replace(self.config, temperature=temperature)
        if self.engine is None:
            replies = []
            for start, chunk in tqdm(list(batched(conversations, config.batch_size)), desc="answer", unit="batch"):
                texts = generate_batch(self.model, self.tokenizer, chunk, config, config.chat_template,
                                       seed=config.seed + positions[start])
                for offset, text in enumerate(texts):
                    keep(positions[start + offset], text)
                replies += texts
            return replies
        from ..serve.offline import answer_all

        samplings = [Sampling(temperature=temperature, top_k=config.top_k, top_p=config.top_p,
                              max_new_tokens=config.max_new_tokens, repetition_penalty=config.repetition_penalty,
                              seed=config.seed + i) for i in positions]
        bar = tqdm(total=len(conversations), desc="answer", unit="reply")

        def finished(index: int, text: str, tokens: int) -> None:
            keep(positions[index], text.strip())
            bar.update()

        try:
            done = answer_all(self.engine, conversations, samplings, [f"prompt {i + 1}" for i in positions],
                              on_reply=finished)
        finally:
            bar.close()
        return [text.strip() for text, _ in done]

    def _done(self, mark: str) -> dict[str, str]:
        if not self.resume or not self.resume.is_file():
            return {}
        done = {}
        for line in self.resume.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the last line of a killed run may be cut short
                continue
            if isinstance(row, dict) and row.get("settings") == mark:
                done[conversation_key(row["messages"])] = row["reply"]
        return done

    def _keep(self, mark: str, messages: list[dict], text: str) -> None:
        self.resume.parent.mkdir(parents=True, exist_ok=True)
        with self.resume.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"settings": mark, "messages": messages, "reply": text}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.engine = self.model = None


def make_generator(config, resume: Path | None = None) -> Generator:
    return Generator(config, resume)
