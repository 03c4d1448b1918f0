"""zephyr: make Zephyr-style chat models (dSFT -> AIF -> dDPO -> chat, eval, quantize, serve)."""

__version__ = "0.1.0"
