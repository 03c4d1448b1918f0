"""Preference pairs of varied length (some longer than Gemma 3 tiny's 16-token sliding window)."""

import pytest

PAIRS = [
    {"prompt": [{"role": "user", "content": "How do I bake bread? Tell me in detail please."}],
     "chosen": "Mix flour, water, salt and yeast; knead, let it rise, then bake at 230 degrees.",
     "rejected": "No."},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 17 times 23?"},
                {"role": "assistant", "content": "It is 391."}, {"role": "user", "content": "Explain gravity simply."}],
     "chosen": "Gravity pulls things together.",
     "rejected": "The quick brown fox jumps over the lazy dog, and the lazy dog jumps over the fox too."},
    {"prompt": [{"role": "user", "content": "Translate 'good morning' into French."}],
     "chosen": "Bonjour.", "rejected": "Good morning is a greeting in English, said before noon."},
    {"prompt": [{"role": "user", "content": "Write a haiku about autumn leaves falling on a quiet river."}],
     "chosen": "Red leaves drift and fall / the quiet river carries / autumn to the sea.",
     "rejected": "Summarise the plot of a story in two sentences."},
]


@pytest.fixture
def pairs():
    return [dict(p) for p in PAIRS]
