"""AI feedback (AIF): several models answer each prompt, a judge rates every answer with the UltraFeedback
rubric (instruction following, honesty, truthfulness, helpfulness; 1-5), and the rated rows are binarized
into preference pairs by `zephyr.data.binarize_row` (chosen = best mean rating, rejected = a random lower one).
"""
