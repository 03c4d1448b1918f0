"""`zephyr serve MODEL_OR_DIR`: an OpenAI-compatible server on 127.0.0.1 with the model's chat template."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

from ..chat_template import TEMPLATE_HELP
from ..config import field, parse_args
from ..errors import ConfigError, ZephyrError
from ..sampling import Sampling
from .engine_choice import ENGINES, choose


@dataclasses.dataclass
class ServeConfig:
    """Serve a model over OpenAI's HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health)."""

    model: str = field("embedded", help="model folder, .gguf file, hub id, or 'embedded' (google/gemma-3-270m)")
    engine: str = field("auto", help="auto (fastest installed for the model's format), llama.cpp, vllm, transformers")
    host: str = field("127.0.0.1", help="address to bind; 0.0.0.0 exposes the server to the network")
    port: int = field(8000, help="TCP port")
    api_key: str = field("", help="require 'Authorization: Bearer KEY' (default: $ZEPHYR_API_KEY, else no key)")
    served_model_name: str = field("", help="the model name clients send (default: MODEL as given)")
    chat_template: str = field("auto", help=TEMPLATE_HELP)
    context_length: int = field(0, help="max prompt + reply tokens (0: the model's own limit, capped at 8192)")
    max_tokens_limit: int = field(2048, help="largest max_tokens a request may ask for")
    temperature: float = field(0.7, help="default sampling temperature (Zephyr model card)")
    top_k: int = field(50, help="default top-k (0: off)")
    top_p: float = field(0.95, help="default nucleus top-p")
    dtype: str = field("auto", help="transformers engine weights: auto, float32, bfloat16")
    max_num_seqs: int = field(32, help="requests batched together at most (every engine)")
    kv_cache_tokens: int = field(32768, help="KV-cache size in tokens shared by all requests (transformers, llama.cpp)")
    threads: int = field(0, help="CPU threads for llama.cpp (0: all cores)")
    log_level: str = field("warning", help="uvicorn log level: debug, info, warning, error")
    setup: str = field("", help="'vllm': create vLLM's managed environment "
                                "(~/.cache/zephyr/engines/vllm-<env hash>) and exit")

    def __post_init__(self):
        bounds = {"port": (0, 65535), "max_num_seqs": (1, 4096), "kv_cache_tokens": (1, 2**31 - 1),
                  "max_tokens_limit": (1, 2**31 - 1), "context_length": (0, 2**31 - 1), "threads": (0, 4096),
                  "top_k": (0, 2**31 - 1)}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"--{name}: must be between {low} and {high}, got {value}")
        if not 0 <= self.temperature <= 2:
            raise ConfigError(f"--temperature: must be between 0 and 2, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top_p: must be in (0, 1], got {self.top_p}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"--log_level: must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.setup and self.setup != "vllm":
            raise ConfigError(f"--setup: only 'vllm' has a managed environment, not {self.setup!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine: unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.model.endswith(".gguf") and not Path(self.model).is_file():
            raise ConfigError(f"--model: GGUF file not found: {self.model}")

    def defaults(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
DEFAULT_CONTEXT_CAP = 8192
GRACEFUL_SHUTDOWN_S = 5  # a CPU server rarely wants more; the KV cache is sized for it


def load_engine(config: ServeConfig, engine_name: str):
    model_id = config.served_model_name or config.model
    context = config.context_length or DEFAULT_CONTEXT_CAP
    if engine_name == "llama.cpp":
        from .llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(config.model, model_id, chat_template=config.chat_template, context_length=context,
                              threads=config.threads, kv_cache_tokens=config.kv_cache_tokens,
                              max_num_seqs=config.max_num_seqs)
    if engine_name == "vllm":
        from .vllm_engine import VllmEngine

        return VllmEngine(config.model, model_id, chat_template=config.chat_template, context_length=context,
                          max_num_seqs=config.max_num_seqs, dtype=config.dtype)
    from .transformers_engine import TransformersEngine

    return TransformersEngine(config.model, model_id, chat_template=config.chat_template, dtype=config.dtype,
                              context_length=context, kv_cache_tokens=config.kv_cache_tokens,
                              max_num_seqs=config.max_num_seqs)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(ServeConfig, argv, prog="zephyr serve", positional="model")
    if config.setup:
        from ..cache import VLLM, ensure

        print(f"zephyr serve: vLLM environment ready: {ensure(VLLM)}")
        return 0
    try:
        engine_name, reason = choose(config.model, config.engine)
    except ValueError as err:
        raise ConfigError(f"--engine: {err}") from err
    api_key = config.api_key or os.environ.get("ZEPHYR_API_KEY", "")
    print(f"zephyr serve: engine {engine_name} ({reason})", file=sys.stderr, flush=True)

    import uvicorn

    from .app import build_app
    from .protocol import ApiError

    # SIGTERM while the engine loads must still run the clean-up below (vLLM runs as a child process)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        engine = load_engine(config, engine_name)
    except ApiError as err:  # a start-up failure is the user's to fix (missing env, wrong file): no traceback
        raise ZephyrError(err.message) from err
    try:
        app = build_app(engine, config.defaults(), config.max_tokens_limit, api_key or None)
        where = f"http://{config.host}:{config.port}/v1"
        print(f"zephyr serve: {engine.model_id} on {where} (context {engine.context_length} tokens, template "
              f"{engine.template}{', API key required' if api_key else ''})", file=sys.stderr, flush=True)
        # uvicorn stops on SIGTERM/SIGINT; requests still running get a few seconds, then the server exits anyway
        uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level,
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    finally:
        engine.close()
    return 0
