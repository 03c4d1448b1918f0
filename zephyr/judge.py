"""The one client for judges: the model that grades answers (MT-Bench, AlpacaEval) and rates completions (AI
feedback). A judge is a local model or any OpenAI-compatible chat endpoint (GPT-4 as the papers used, or a
`zephyr serve` / vLLM server).

A request is a dict: `messages` (a chat, system message included), `max_tokens`, `temperature` (default 0),
optionally `top_p`, `seed`, `presence_penalty`, `frequency_penalty`, `grammar` (GBNF the reply must follow:
llama.cpp servers), and `top_logprobs` (how many alternatives per generated token to return; 0 = none). A reply
is the text and, when asked for, the top alternatives of every generated token as {token: log-probability}.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from .config import field
from .errors import ConfigError, ZephyrError

# sent only when a request has them (`grammar`: GBNF, an extension of llama.cpp's server and zephyr serve's)
OPTIONAL_FIELDS = ("top_p", "seed", "presence_penalty", "frequency_penalty", "grammar")
RETRIED_STATUS = (408, 429, 500, 502, 503, 504)  # rate limits and server hiccups; other 4xx are our mistake


class JudgeError(ZephyrError):
    """The judge endpoint could not be reached or answered something that is not a chat completion."""


@dataclasses.dataclass
class Reply:
    text: str
    top_logprobs: list[dict[str, float]] | None = None  # per generated token: {alternative: log-probability}


def user_request(prompt: str, max_tokens: int = 1024) -> dict:
    return {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint(base_url: str) -> str:
    """`http://host:port` or `.../v1` -> the chat-completions URL."""
    base = base_url.rstrip("/")
    return base + ("" if base.endswith("/v1") else "/v1") + "/chat/completions"


def check_key_transport(base_url: str, api_key_env: str, allow_insecure: bool) -> None:
    scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme not in ("http", "https"):
        raise ConfigError(f"--judge_url: {base_url!r} is not an http(s) URL")
    if os.environ.get(api_key_env) and scheme != "https" and not is_loopback(base_url) and not allow_insecure:
        raise ConfigError(f"--judge_url: ${api_key_env} would be sent in clear text to {base_url}; use https, "
                          "a loopback address, or --allow_insecure_judge true")


class HTTPJudge:
    """POST /v1/chat/completions, `concurrency` requests in flight, retried with exponential backoff.

    The API key (read from the environment variable `api_key_env`) is sent only over https or to a loopback
    address, unless `allow_insecure`: a key sent over plain http to another host can be read on the way."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout: float = 600, retries: int = 6, allow_insecure: bool = False):
        self.url = endpoint(base_url)
        self.model, self.concurrency, self.timeout, self.retries = model, concurrency, timeout, retries
        check_key_transport(base_url, api_key_env, allow_insecure)
        self.api_key = os.environ.get(api_key_env, "")
        self.name = model

    def _body(self, request: dict) -> bytes:
        body = {"model": self.model, "messages": request["messages"],
                "temperature": request.get("temperature", 0), "max_tokens": request.get("max_tokens", 1024)}
        body.update((key, request[key]) for key in OPTIONAL_FIELDS if key in request)
        if request.get("top_logprobs"):
            body.update(logprobs=True, top_logprobs=request["top_logprobs"])
        return json.dumps(body).encode()

    def _reply(self, payload: dict, request: dict) -> Reply:
        choice = payload["choices"][0]
        text = choice["message"]["content"] or ""
        if not request.get("top_logprobs"):
            return Reply(text)
        content = (choice.get("logprobs") or {}).get("content")
        if not content:
            raise JudgeError(f"judge {self.url} returned no logprobs; this evaluation needs an endpoint that "
                             "returns `logprobs`/`top_logprobs` (OpenAI, vLLM and `zephyr serve` do)")
        return Reply(text, [{alt["token"]: alt["logprob"] for alt in token["top_logprobs"]} for token in content])

    def ask(self, request: dict) -> Reply:
        body = self._body(request)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            try:
                http_request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(http_request, timeout=self.timeout) as response:
                    payload = response.read()
                break
            except urllib.error.HTTPError as err:
                if err.code not in RETRIED_STATUS or attempt == self.retries:
                    detail = err.read().decode(errors="replace")[:300]
                    raise JudgeError(f"judge {self.url} answered HTTP {err.code}: {detail}") from err
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == self.retries:
                    raise JudgeError(f"judge {self.url} unreachable: {err}") from err
            time.sleep(min(2 ** attempt, 60))
        try:
            completion = json.loads(payload)
            completion["choices"][0]["message"]
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise JudgeError(f"judge {self.url} sent a reply that is not a chat completion") from err
        return self._reply(completion, request)

    def chat(self, requests: Sequence[dict]) -> list[Reply]:
        """Replies in the order of `requests`; up to `concurrency` of them in flight at once."""
        if self.concurrency <= 1 or len(requests) <= 1:
            return [self.ask(r) for r in requests]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self.ask, requests))

    def complete(self, prompts: Sequence[str], max_tokens: int = 1024) -> list[str]:
        return [reply.text for reply in self.chat([user_request(p, max_tokens) for p in prompts])]


class LocalJudge:
    """A causal LM loaded with zephyr.models, decoding greedily through its chat template. It returns text only;
    a judge whose token probabilities are needed runs behind `zephyr serve` and is reached with --judge_url."""

    def __init__(self, model_name: str, batch_size: int = 4):
        from .models import load_model, load_tokenizer
        from .sampling import SamplingConfig

        self.config = SamplingConfig(model=model_name, temperature=0)
        self.tokenizer = load_tokenizer(self.config)
        self.model = load_model(self.config, self.tokenizer).eval()
        self.batch_size = batch_size
        self.name = model_name

    def chat(self, requests: Sequence[dict]) -> list[Reply]:
        from .sampling import generate_batch

        if any(r.get("top_logprobs") for r in requests):
            raise JudgeError("a local --judge returns no token probabilities; serve it with `zephyr serve` and "
                             "pass --judge_url")
        if any(r.get("grammar") for r in requests):
            raise JudgeError("a local --judge cannot hold its replies to a grammar; serve a GGUF of it with "
                             "`zephyr serve X.gguf --engine llama.cpp` and pass --judge_url")
        replies: list[Reply] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            # one generation length per batch: the largest any request of the batch asks for
            sampling = dataclasses.replace(self.config, max_new_tokens=max(r.get("max_tokens", 1024) for r in chunk))
            texts = generate_batch(self.model, self.tokenizer, [r["messages"] for r in chunk], sampling,
                                   self.config.chat_template)
            replies += [Reply(t) for t in texts]
        return replies

    def complete(self, prompts: Sequence[str], max_tokens: int = 1024) -> list[str]:
        return [reply.text for reply in self.chat([user_request(p, max_tokens) for p in prompts])]


@dataclasses.dataclass
class JudgeConfig:
    """Which judge grades: a local model, or an OpenAI-compatible endpoint."""

    judge: str = field("", help="a local judge model (hub id, folder, 'embedded'); or use --judge_url")
    judge_url: str = field("", help="OpenAI-compatible endpoint of the judge, e.g. https://api.openai.com/v1 or "
                                    "http://127.0.0.1:8000/v1 (zephyr serve)")
    judge_model: str = field("gpt-4-0613", help="model name sent to --judge_url")
    judge_api_key_env: str = field("OPENAI_API_KEY", help="environment variable holding the judge's API key")
    judge_concurrency: int = field(8, help="judge requests in flight at once (--judge_url)")
    allow_insecure_judge: bool = field(False, help="send the API key over plain http to a non-loopback host")

    def __post_init__(self):
        getattr(super(), "__post_init__", lambda: None)()
        if self.judge_concurrency < 1:
            raise ConfigError(f"--judge_concurrency: must be at least 1, got {self.judge_concurrency}")


def check_judge(config: JudgeConfig) -> None:
    if bool(config.judge) == bool(config.judge_url):
        raise ConfigError("give exactly one of --judge (a local model) or --judge_url (an OpenAI-compatible server)")
    if config.judge_url:
        check_key_transport(config.judge_url, config.judge_api_key_env, config.allow_insecure_judge)


def make_judge(config: JudgeConfig):
    check_judge(config)
    if config.judge_url:
        return HTTPJudge(config.judge_url, config.judge_model, config.judge_api_key_env,
                         concurrency=config.judge_concurrency, allow_insecure=config.allow_insecure_judge)
    return LocalJudge(config.judge)
