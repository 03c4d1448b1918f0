"""AI feedback (AIF) as UltraFeedback made it: a pool of models answers each prompt under principle system
prompts, a judge rates the completions per aspect (all K in one call, UltraFeedback's rubrics) and critiques
each for an overall_score, and the rated rows are binarized into preference pairs (`zephyr.data.binarize`).
"""
