"""Out-of-range or unknown training settings stop `zephyr sft` with exit code 2 and `--field: problem`, before
any data or model is loaded."""

import pytest

from zephyr.cli import main as zephyr

BAD = [
    (["--learning_rate", "-1e-5"], "--learning_rate: must be a number >= 0"),
    (["--learning_rate", "nan"], "--learning_rate: must be a number >= 0"),
    (["--learning_rate", "inf"], "--learning_rate: must be a number >= 0"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size: must be a number >= 1"),
    (["--per_device_train_batch_size", "-2"], "--per_device_train_batch_size: must be a number >= 1"),
    (["--per_device_eval_batch_size", "0"], "--per_device_eval_batch_size: must be a number >= 1"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps: must be a number >= 1"),
    (["--num_train_epochs", "0"], "--num_train_epochs: must be > 0"),
    (["--num_train_epochs", "-1"], "--num_train_epochs: must be a number >= 0"),
    (["--warmup_ratio", "5"], "--warmup_ratio: must be in [0, 1]"),
    (["--warmup_ratio", "-1"], "--warmup_ratio: must be in [0, 1]"),
    (["--adam_beta2", "1"], "--adam_beta2: must be in [0, 1)"),
    (["--adam_epsilon", "0"], "--adam_epsilon: must be a number > 0"),
    (["--max_grad_norm", "-1"], "--max_grad_norm: must be a number >= 0"),
    (["--weight_decay", "nan"], "--weight_decay: must be a number >= 0"),
    (["--logging_steps", "0"], "--logging_steps: must be a number >= 1"),
    (["--save_total_limit", "-1"], "--save_total_limit: must be a number >= 0"),
    (["--test_split_size", "-1"], "--test_split_size: must be a share from 0 to 1 or a whole row count >= 1"),
    (["--test_split_size", "1.5"], "--test_split_size: must be a share from 0 to 1 or a whole row count >= 1"),
    (["--lr_scheduler_type", "cosine_annealing"], "--lr_scheduler_type: 'cosine_annealing' is not one of linear"),
    (["--lr_scheduler_type", "reduce_lr_on_plateau"], "--lr_scheduler_type: 'reduce_lr_on_plateau' is not one of"),
    (["--attn_implementation", "flash"], "--attn_implementation: 'flash' is not one of sdpa"),
    (["--max_seq_length", "0"], "--max_seq_length: must be >= 2 tokens"),
    (["--resume", "--overwrite_output_dir"], "--overwrite_output_dir: cannot be combined with --resume"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[" ".join(args) for args, _ in BAD])
def test_bad_setting_is_a_clear_error(extra, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert zephyr(["sft", "--output_dir", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("extra", [["--test_split_size", "0"], ["--test_split_size", "0.2"],
                                   ["--test_split_size", "50"], ["--warmup_ratio", "1"], ["--learning_rate", "0"],
                                   ["--num_train_epochs", "0", "--max_steps", "3"],
                                   ["--attn_implementation", "eager"], ["--lr_scheduler_type", "inverse_sqrt"]])
def test_edge_values_that_mean_something_are_accepted(extra):
    from zephyr.config import parse_args
    from zephyr.sft import SFTConfig

    parse_args(SFTConfig, extra)
