"""The pool of answering models and UltraFeedback's draw of who answers a prompt and under which principle.

An answerer is a local checkpoint (folder, hub id, 'embedded'), a GGUF file, or an OpenAI-compatible endpoint
with a model name, each with its own sampling settings (UltraFeedback's by default: temperature 1, top_p 1,
up to 1024 new tokens). A local answerer replies through its own chat template (the checkpoint's, `auto`).

Per prompt (UltraFeedback, README "Model Sampling" and src/comparison_data_generation/main.py):
  * K answerers (default 4) drawn without replacement from the pool;
  * for each completion a principle chosen by the prompt's source dataset -- sharegpt and ultrachat:
    helpfulness 3/5, truthfulness 1/5, honesty 1/5; flan: helpfulness 4/5, verbalized_calibration 1/5;
    evol_instruct and any other source: helpfulness; truthful_qa and false_qa: honesty 1/2, truthfulness
    1/2 -- after which honesty turns into verbalized_calibration with probability 0.1; then one system prompt
    drawn uniformly from that principle's list. The system prompt goes before the conversation.
Every draw comes from a generator seeded with (seed, prompt index, slot), so a resumed run draws the same.
"""

from __future__ import annotations

import dataclasses

from ..data.binarize import row_rng
from ..errors import ConfigError

PRINCIPLE_CHOICES = {
    "sharegpt": ("helpfulness",) * 3 + ("truthfulness", "honesty"),
    "ultrachat": ("helpfulness",) * 3 + ("truthfulness", "honesty"),
    "flan": ("helpfulness",) * 4 + ("verbalized_calibration",),
    "evol_instruct": ("helpfulness",),
    "truthful_qa": ("honesty", "truthfulness"),
    "false_qa": ("honesty", "truthfulness"),
}
HONESTY_KEPT = 0.9  # otherwise honesty becomes verbalized_calibration

SETTINGS = {"temperature": float, "top_p": float, "top_k": int, "max_new_tokens": int, "engine": str,
            "chat_template": str, "name": str, "model": str, "url": str}


@dataclasses.dataclass(frozen=True)
class Answerer:
    name: str
    model: str  # local: folder, hub id, 'embedded' or .gguf; endpoint: the model name sent
    url: str = ""  # OpenAI-compatible endpoint; empty for a local model
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 1024
    engine: str = "auto"  # local models: zephyr serve's engines; auto as serve.engine_choice.choose_for_pool
    chat_template: str = "auto"


def parse_answerer(spec: str, defaults: dict) -> Answerer:
    """`MODEL` or `key=value,key=value` (keys: model, url, name, temperature, top_p, top_k, max_new_tokens,
    engine, chat_template), e.g. `embedded,temperature=0.5` or `url=https://api.openai.com/v1,model=gpt-4`."""
    values = dict(defaults)
    for i, part in enumerate(p.strip() for p in spec.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            if i:
                raise ConfigError(f"--pool: {spec!r}: {part!r} is not key=value")
            key, value = "model", part
        if key not in SETTINGS:
            raise ConfigError(f"--pool: {spec!r}: unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        try:
            values[key] = SETTINGS[key](value)
        except ValueError as err:
            raise ConfigError(f"--pool: {spec!r}: {key} must be a {SETTINGS[key].__name__}, got {value!r}") from err
    if not values.get("model"):
        raise ConfigError(f"--pool: {spec!r} names no model")
    if values["temperature"] < 0 or not 0 < values["top_p"] <= 1 or values["top_k"] < 0 \
            or values["max_new_tokens"] < 1:
        raise ConfigError(f"--pool: {spec!r}: temperature >= 0, 0 < top_p <= 1, top_k >= 0 and "
                          "max_new_tokens >= 1 are needed")
    if values.get("url") and values["top_k"] != 0:
        # top_k is not an OpenAI chat parameter: refuse rather than ignore
        raise ConfigError(f"--pool: {spec!r}: an endpoint answerer takes no top_k (the OpenAI API has none)")
    values.setdefault("name", spec)
    return Answerer(**values)


def parse_pool(specs: list[str], defaults: dict) -> list[Answerer]:
    pool = [parse_answerer(spec, defaults) for spec in specs]
    names = [a.name for a in pool]
    if len(set(names)) != len(names):
        raise ConfigError("--pool: two answerers have the same name; give each a distinct name=...")
    return pool


def draw_answerers(pool: list[Answerer], k: int, seed: int, prompt_index: int) -> list[Answerer]:
    rng = row_rng(seed, f"pool\x00{prompt_index}")
    return [pool[i] for i in rng.sample(range(len(pool)), k)]


def draw_principle(source: str, principles: dict, seed: int, prompt_index: int, slot: int) -> tuple[str, str]:
    """-> (principle, system prompt) for one completion."""
    rng = row_rng(seed, f"principle\x00{prompt_index}\x00{slot}")
    principle = rng.choice(PRINCIPLE_CHOICES.get(source, ("helpfulness",)))
    if principle == "honesty" and rng.random() >= HONESTY_KEPT:
        principle = "verbalized_calibration"
    return principle, rng.choice(principles[principle])


def with_system_prompt(messages: list[dict], system_prompt: str) -> list[dict]:
    """The principle as the system message; a conversation's own system message keeps its text first, the
    principle appended after a space (as UltraFeedback appends it to a FastChat template's system text)."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']} {system_prompt}"}, *messages[1:]]
    return [{"role": "system", "content": system_prompt}, *messages]
