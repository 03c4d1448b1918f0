"""Evaluation of chat models as the Zephyr cards report them, each benchmark following its official
implementation: MT-Bench (FastChat's llm_judge, single-answer grading), AlpacaEval, IFEval, and
lm-evaluation-harness tasks with presets of the published tables (Open LLM Leaderboard v1/v2, the Nous suite).

Judges come from `zephyr.judge`: a local model or any OpenAI-compatible endpoint (GPT-4 for the published
numbers). A judged figure compares with a published one only when the judge is the same.
"""
