"""Evaluation of chat models as the Zephyr paper reports them: MT-Bench (judge scores 1-10 per turn),
AlpacaEval (judge win rate against a reference model's outputs) and IFEval (verifiable instructions).

Judges come from `zephyr.judge`: a local model or any OpenAI-compatible endpoint (GPT-4 in the
paper). Judge prompts are our own wording of each benchmark's protocol, so absolute numbers are comparable to
the leaderboards only with the same judge model, and are always comparable between models judged alike.
"""
