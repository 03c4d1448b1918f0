"""dDPO: preference optimisation on chosen/rejected pairs (losses, packing, reference log-probs, trainer)."""
