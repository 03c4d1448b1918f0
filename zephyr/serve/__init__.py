"""`zephyr serve`: an OpenAI-compatible HTTP server in front of a real inference engine.

protocol.py         request validation, the OpenAI reply shapes and OpenAI-style error JSON
engine.py           the engine interface, stop strings and token limits (the same for every engine)
batched_decoder.py  continuous batching for transformers models, and the request stream both batching engines use
transformers_engine.py / llamacpp_engine.py (+ llamacpp_batched.py) / vllm_engine.py   the engines
engine_choice.py    `--engine auto`: the fastest engine installed for the model's format
app.py              the routes (/v1/chat/completions, /v1/completions, /v1/models, /health)
cli.py              `zephyr serve MODEL_OR_DIR`

A new engine subclasses `engine.Engine` (or `HFTokenizerEngine`), is built in `cli.load_engine` and is named in
`engine_choice.ENGINES`.
"""
