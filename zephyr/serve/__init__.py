"""`zephyr serve`: an OpenAI-compatible HTTP server in front of a real inference engine.

protocol.py  request validation and OpenAI-style error JSON
engine.py    the engine interface, sampling parameters, stop-string handling
transformers_engine.py / llamacpp_engine.py / vllm_engine.py   the engines
select.py    `--engine auto`: the fastest engine installed for the model's format
app.py       the routes (/v1/chat/completions, /v1/completions, /v1/models, /health)
cli.py       `zephyr serve MODEL_OR_DIR`
"""
