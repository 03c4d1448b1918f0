"""Judges that rate a reply with the rubric: a local model, or any OpenAI-compatible chat endpoint
(GPT-4 as in the Zephyr paper, or a `zephyr serve`/vLLM server). Both decode greedily."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import urllib.error
import urllib.request
from typing import Sequence

from ..config import field
from ..errors import ConfigError, ZephyrError
from .rubric import judge_prompt, parse_ratings


class JudgeError(ZephyrError):
    """The judge endpoint could not be reached or answered nonsense."""


class LocalJudge:
    """A causal LM loaded with zephyr.models, prompted with the rubric through its chat template."""

    def __init__(self, model_name: str, max_new_tokens: int = 64, batch_size: int = 4):
        from ..sampling import SamplingConfig
        from ..models import load_model, load_tokenizer

        self.config = SamplingConfig(model=model_name, temperature=0, max_new_tokens=max_new_tokens)
        self.tokenizer = load_tokenizer(self.config)
        self.model = load_model(self.config, self.tokenizer).eval()
        self.batch_size = batch_size
        self.name = model_name

    def complete(self, prompts: Sequence[str]) -> list[str]:
        from ..sampling import batched, generate_batch

        replies: list[str] = []
        for _, chunk in batched(list(prompts), self.batch_size):
            conversations = [[{"role": "user", "content": p}] for p in chunk]
            replies += generate_batch(self.model, self.tokenizer, conversations, self.config,
                                      self.config.chat_template)
        return replies


class HTTPJudge:
    """POST /v1/chat/completions; the key comes from the environment variable named by `api_key_env`."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", max_tokens: int = 64,
                 timeout: float = 120, retries: int = 4):
        self.url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/v1") else "/v1") + \
            "/chat/completions"
        self.model, self.max_tokens, self.timeout, self.retries = model, max_tokens, timeout, retries
        self.api_key = os.environ.get(api_key_env, "")
        self.name = f"{model}@{base_url}"

    def _ask(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as err:
                # rate limits and server hiccups are worth a retry; a 4xx is our mistake and is not
                if err.code not in (429, 500, 502, 503, 504) or attempt == self.retries:
                    detail = err.read().decode(errors="replace")[:300]
                    raise JudgeError(f"judge {self.url} answered HTTP {err.code}: {detail}") from err
            except (urllib.error.URLError, TimeoutError) as err:
                if attempt == self.retries:
                    raise JudgeError(f"judge {self.url} unreachable: {err}") from err
            except (KeyError, IndexError, ValueError) as err:
                raise JudgeError(f"judge {self.url} sent a reply that is not a chat completion") from err
            time.sleep(min(2 ** attempt, 30))
        raise AssertionError("unreachable")

    def complete(self, prompts: Sequence[str]) -> list[str]:
        return [self._ask(p) for p in prompts]


def rate(judge, pairs: Sequence[tuple[str, str]]) -> list[tuple[dict[str, str], str]]:
    """[(instruction, response)] -> [(ratings, raw judge text)]."""
    texts = judge.complete([judge_prompt(instruction, response) for instruction, response in pairs])
    return [(parse_ratings(text), text) for text in texts]


@dataclasses.dataclass
class JudgeConfig:
    """Which judge rates replies: a local model, or an OpenAI-compatible endpoint."""

    judge: str = field("", help="a local judge model (hub id, folder, 'embedded'); or use --judge_url")
    judge_url: str = field("", help="OpenAI-compatible endpoint of the judge, e.g. http://127.0.0.1:8000/v1")
    judge_model: str = field("gpt-4-0613", help="model name sent to --judge_url")
    judge_api_key_env: str = field("OPENAI_API_KEY", help="environment variable holding the judge's API key")


def check_judge(config: JudgeConfig) -> None:
    if bool(config.judge) == bool(config.judge_url):
        raise ConfigError("give exactly one of --judge (a local model) or --judge_url (an OpenAI-compatible server)")


def make_judge(config: JudgeConfig):
    check_judge(config)
    if config.judge_url:
        return HTTPJudge(config.judge_url, config.judge_model, config.judge_api_key_env)
    return LocalJudge(config.judge)
