"""Recipes fill dataclasses; the command line overrides; unknown keys name the nearest valid one."""

from __future__ import annotations

import dataclasses

import pytest

from zephyr.config import ConfigError, field, load_yaml, parse_args


@dataclasses.dataclass
class Example:
    """An example stage."""

    learning_rate: float = field(2e-5, help="peak learning rate")
    num_train_epochs: int = field(1, help="passes over the data")
    use_lora: bool = field(False, help="train an adapter")
    output_dir: str = field("out", help="where to write")
    dataset_mixer: dict[str, float] = field({"a": 1.0}, help="source -> fraction")
    targets: list[str] = field(["all-linear"], help="modules")
    max_steps: int | None = field(None, help="stop after this many steps")


def test_yaml_then_command_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 5.0e-7\nnum_train_epochs: 3\ndataset_mixer: {x: 0.5, y: 1}\n")
    config = parse_args(Example, ["--config", str(recipe), "--num_train_epochs", "2", "--use-lora",
                                  "--targets", "q_proj", "v_proj", "--max_steps", "10"])
    assert config.learning_rate == 5e-7
    assert config.num_train_epochs == 2
    assert config.use_lora is True
    assert config.dataset_mixer == {"x": 0.5, "y": 1}
    assert config.targets == ["q_proj", "v_proj"]
    assert config.max_steps == 10
    assert config.output_dir == "out"


def test_bool_values_and_none():
    config = parse_args(Example, ["--use_lora", "false", "--max_steps", "none", "--dataset_mixer", '{"z": 0.1}'])
    assert config.use_lora is False and config.max_steps is None and config.dataset_mixer == {"z": 0.1}


def test_mutable_defaults_are_not_shared():
    a, b = Example(), Example()
    a.targets.append("x")
    assert b.targets == ["all-linear"]


@pytest.mark.parametrize("argv, message", [
    (["--learning_rat", "1"], "unknown field 'learning_rat' in command line; did you mean 'learning_rate'?"),
    (["--num_train_epochs", "two"], "--num_train_epochs: cannot read 'two' as int"),
    (["--output_dir"], "--output_dir needs a value"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_command_line_errors(argv, message):
    with pytest.raises(ConfigError) as err:
        parse_args(Example, argv)
    assert message in str(err.value)


def test_unknown_recipe_key_names_nearest(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("num_epochs: 3\n")
    with pytest.raises(ConfigError, match="unknown field 'num_epochs' in recipe; did you mean 'num_train_epochs'"):
        parse_args(Example, ["--config", str(recipe)])


def test_bad_recipe_files(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        parse_args(Example, ["--config", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_args(Example, ["--config", str(bad)])


def test_a_key_given_twice_is_an_error_not_the_last_value(tmp_path):
    recipe = tmp_path / "twice.yaml"
    recipe.write_text("learning_rate: 1.0e-5\nnum_train_epochs: 1\nlearning_rate: 2.0e-5\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: not valid YAML: key 'learning_rate' appears twice(.|\n)*line 3"):
        parse_args(Example, ["--config", str(recipe)])
    recipe.write_text("dataset_mixer: {x: 0.5, x: 1}\n")
    with pytest.raises(ConfigError, match="key 'x' appears twice"):
        parse_args(Example, ["--config", str(recipe)])
    recipe.write_text("shared: &s {x: 0.5, y: 1}\nmixer:\n  <<: *s\n  y: 0.25\n")  # YAML merge: overriding is legal
    assert load_yaml(recipe)["mixer"] == {"x": 0.5, "y": 0.25}
    with pytest.raises(ConfigError, match="--dataset_mixer: key 'x' appears twice"):
        parse_args(Example, ["--dataset_mixer", '{"x": 0.5, "x": 1}'])


def test_help_lists_every_field_with_default_and_meaning(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(Example, ["--help"], prog="zephyr example")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: zephyr example [--config RECIPE.yaml] [--FIELD VALUE ...]\n\nAn example stage.\n")
    assert "  --learning_rate float  (default: 2e-05)\n      peak learning rate\n" in out
    assert "  --max_steps int | None  (default: None)\n" in out
    for f in dataclasses.fields(Example):
        assert f"--{f.name} " in out and f.metadata["help"] in out
    assert "(default: 2e-05)" in out and "(default: ['all-linear'])" in out


def test_positional_field():
    config = parse_args(Example, ["somewhere", "--num_train_epochs", "4"], positional="output_dir")
    assert config.output_dir == "somewhere" and config.num_train_epochs == 4


@pytest.mark.parametrize("argv, targets", [
    (["--targets", "q_proj", "v_proj", "--num_train_epochs", "2"], ["q_proj", "v_proj"]),
    (["--targets", "q_proj"], ["q_proj"]),
    (["--targets=q_proj"], ["q_proj"]),
    (["--targets", '["q_proj", "v_proj"]'], ["q_proj", "v_proj"]),
    (["--targets", "a,b"], ["a,b"]),  # one convention: a comma is part of the value
])
def test_lists_are_space_separated_words_or_one_json_list(argv, targets):
    assert parse_args(Example, argv).targets == targets


def test_recipe_list_and_empty_list(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("targets: [q_proj, k_proj]\n")
    assert parse_args(Example, ["--config", str(recipe)]).targets == ["q_proj", "k_proj"]
    assert parse_args(Example, ["--targets", "[]"]).targets == []
    with pytest.raises(ConfigError, match="--targets needs at least one value"):
        parse_args(Example, ["--targets", "--max_steps", "1"])


@dataclasses.dataclass
class Copy:
    """Copy a file."""

    source: str = field(help="file to read")
    destination: str = field(help="file to write")
    lines: list[str] = field([], help="lines to keep")


def test_several_positionals_and_required_fields(capsys):
    config = parse_args(Copy, ["a.txt", "b.txt", "--lines", "1", "2"], positional=["source", "destination"])
    assert (config.source, config.destination, config.lines) == ("a.txt", "b.txt", ["1", "2"])
    with pytest.raises(ConfigError, match=r"usage: copy SOURCE DESTINATION .*: DESTINATION is missing"):
        parse_args(Copy, ["a.txt"], prog="copy", positional=["source", "destination"])
    with pytest.raises(ConfigError, match="unexpected argument 'c.txt'"):
        parse_args(Copy, ["a.txt", "b.txt", "c.txt"], positional=["source", "destination"])
    with pytest.raises(ConfigError, match="--destination is required"):
        parse_args(Copy, ["--source", "a.txt"])
    with pytest.raises(SystemExit):
        parse_args(Copy, ["--help"], prog="copy", positional=["source", "destination"])
    out = capsys.readouterr().out
    assert out.startswith("usage: copy SOURCE DESTINATION [--config RECIPE.yaml]") and "(default: '(required)')" in out


def test_recipe_subset_ignores_other_stages_fields_but_not_typos(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1.0e-5\nlines: [x]\n")
    config = parse_args(Copy, ["--config", str(recipe), "a", "b"], positional=["source", "destination"],
                        recipe_subset=True)
    assert config.lines == ["x"]
    recipe.write_text("line: [x]\n")  # a near-miss of `lines` is a typo, not another stage's field
    with pytest.raises(ConfigError, match="did you mean 'lines'"):
        parse_args(Copy, ["--config", str(recipe), "a", "b"], positional=["source", "destination"],
                   recipe_subset=True)
