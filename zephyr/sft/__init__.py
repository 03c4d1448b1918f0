"""dSFT: supervised fine-tuning on dialogues, assistant-only loss, padding-free packing (Zephyr step 1).

    from zephyr.sft import SFTConfig, run_sft
    result = run_sft(SFTConfig(model="embedded", dataset_mixer={"zephyr/demo_data": 1.0}, ...))

`zephyr sft --config recipes/demo/sft.yaml [--field value ...]` is the same through zephyr/sft/cli.py.
"""

from .config import SFTConfig
from .loss import sft_loss
from .stage import run_sft, tokenize_conversations

__all__ = ["SFTConfig", "run_sft", "sft_loss", "tokenize_conversations"]
