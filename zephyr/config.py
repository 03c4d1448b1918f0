"""Command configuration: a dataclass per command, filled from a YAML recipe, then `--key value` overrides.

The precedence is alignment-handbook's: dataclass defaults < YAML recipe < command line.
Every field carries a one-line `help` in its metadata, which `--help` prints with the default.
`parse_args` is the one parser of every command: bare arguments fill the command's positional fields, and a
list field takes space-separated words (`--tasks a b`) on the command line and a YAML list in a recipe.
A field is declared in one class only; configs share fields by sharing a base (tests/test_cli.py checks it).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")
BOOL_WORDS = {True: ("true", "1", "yes", "on"), False: ("false", "0", "no", "off")}


def field(default: Any = dataclasses.MISSING, help: str = "", **kwargs) -> Any:
    """A dataclass field with a one-line meaning shown by `--help`. Mutable defaults are copied."""
    metadata = {"help": help}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


@dataclasses.dataclass
class SeedConfig:
    """The seed of a training or data stage: TrainConfig and DataConfig both inherit it, so the stage configs
    that combine them have one `seed`."""

    seed: int = field(42, help="seed of everything random the command does (data shuffling, hold-out and "
                               "sampling; in training also adapter init, dropout and the batch order)")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(name: str, value: Any, tp: Any) -> Any:
    """Turn a YAML or command-line value into the field's declared type, or raise ConfigError naming the field.

    A list field takes a YAML list, a JSON list (`'["a", "b"]'`) or one plain string, which is one item: the
    command line gives several items as separate words (`--tasks a b`), never as one comma-joined word.
    """
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional or inner is Any:
            return None
        raise ConfigError(f"--{name} may not be empty")
    origin = typing.get_origin(inner)
    from .data.io import DuplicateKey, loads as json_loads  # the one JSON reader (rejects repeated keys)

    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in BOOL_WORDS[True]:
                return True
            if text in BOOL_WORDS[False]:
                return False
            raise ValueError(value)
        if inner in (int, float, str):
            if inner is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if inner is int and isinstance(value, str):
                return int(float(value)) if "e" in value.lower() else int(value)
            return inner(value)
        if origin in (list, tuple):
            if isinstance(value, str):
                value = json_loads(value) if value.strip().startswith("[") else [value]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            (item_tp,) = typing.get_args(inner)[:1] or (Any,)
            return [coerce(name, v, item_tp) if item_tp is not Any else v for v in value]
        if origin is dict:
            if isinstance(value, str):
                value = json_loads(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except DuplicateKey as err:
        raise ConfigError(f"--{name}: key {err.key!r} appears twice in {value!r} (which value is meant?)") from None
    except (TypeError, ValueError, json.JSONDecodeError) as err:
        raise ConfigError(f"--{name}: cannot read {value!r} as {_type_name(tp)}") from err
    return value


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    name = getattr(inner, "__name__", None) or str(inner).replace("typing.", "")
    if typing.get_origin(inner) is not None:
        name = str(inner).replace("typing.", "")
    return f"{name} | None" if optional else name


def _unknown(key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key.replace("-", "_"), valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown field '{key}' in {where}{hint}")


def _required(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def from_dict(cls: type[T], values: dict[str, Any], where: str = "recipe") -> T:
    """Build `cls` from a mapping, rejecting unknown keys with the nearest valid name and naming missing ones."""
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise _unknown(key, names, where)
        kwargs[key] = coerce(key, value, hints[key])
    missing = [name for name in _required(cls) if name not in kwargs]
    if missing:
        raise ConfigError(f"--{missing[0]} is required")
    return cls(**kwargs)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a mapping naming one key twice is an error (YAML itself lets the last
    value win silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by the mapping's keys
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice (which value is "
                                                        "meant?)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; pass the recipe's YAML file")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"recipe not found: {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of field: value")
    return data


def _positionals(positional: str | Sequence[str] | None) -> list[str]:
    if positional is None:
        return []
    return [positional] if isinstance(positional, str) else list(positional)


def usage_line(cls: type, prog: str, positional: str | Sequence[str] | None = None) -> str:
    """`usage: PROG INPUT OUTPUT [--config RECIPE.yaml] [--FIELD VALUE ...]`; an optional positional in [ ]."""
    required = _required(cls)
    words = [name.upper() if name in required else f"[{name.upper()}]" for name in _positionals(positional)]
    return " ".join(["usage:", prog, *words, "[--config RECIPE.yaml] [--FIELD VALUE ...]"])


def format_help(cls: type, prog: str, positional: str | Sequence[str] | None = None) -> str:
    """Every field with its type, default and one-line meaning."""
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    lines = [usage_line(cls, prog, positional), "", doc, "",
             "fields (YAML key or --flag; a list is --FIELD A B C, or a list in the recipe):"]
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        lines.append(f"  --{f.name} {_type_name(hints[f.name])}  (default: {default!r})")
        if f.metadata.get("help"):
            lines.append(f"      {f.metadata['help']}")
    return "\n".join(lines)


def _recipe_subset(values: dict[str, Any], names: list[str], path: str) -> dict[str, Any]:
    """A recipe's keys that are fields of this command; the others belong to other stages, but a near-miss
    of a field is a typo and says so."""
    kept = {}
    for key, value in values.items():
        if key in names:
            kept[key] = value
            continue
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.85)
        if close:
            raise ConfigError(f"{path}: unknown field '{key}'; did you mean '{close[0]}'?")
    return kept


def parse_args(cls: type[T], argv: list[str] | None = None, prog: str = "zephyr",
               positional: str | Sequence[str] | None = None, recipe_subset: bool = False) -> T:
    """`[POSITIONAL ...] [--config recipe.yaml] [--key value | --key=value | --flag | --list a b c] ...` -> cls.

    `positional` names the field (or, in order, the fields) that bare arguments fill, e.g. the model path; a
    positional field without a default must be given. A list field takes every word up to the next `--key`
    (or one JSON list). `recipe_subset`: the recipe may hold other stages' fields, which are ignored.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(format_help(cls, prog, positional))
        raise SystemExit(0)
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    positionals = _positionals(positional)
    recipe: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    bare: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            if len(bare) == len(positionals):
                raise ConfigError(f"unexpected argument '{arg}'")
            bare.append(arg)
            continue
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key == "config":
            if not eq:
                if i >= len(argv):
                    raise ConfigError("--config needs a YAML path")
                value, i = argv[i], i + 1
            values = load_yaml(value)
            recipe.update(_recipe_subset(values, names, value) if recipe_subset else values)
            continue
        if key not in hints:
            raise _unknown(key, names, "command line")
        if eq:
            overrides[key] = value
            continue
        inner, _ = _unwrap_optional(hints[key])
        if inner is bool:  # a bare flag is true; a following true/false word is its value
            if i < len(argv) and argv[i].lower() in BOOL_WORDS[True] + BOOL_WORDS[False]:
                overrides[key], i = argv[i], i + 1
            else:
                overrides[key] = "true"
        elif typing.get_origin(inner) in (list, tuple):
            words = []
            while i < len(argv) and not argv[i].startswith("--"):
                words.append(argv[i])
                i += 1
            if not words:
                raise ConfigError(f"--{key} needs at least one value")
            overrides[key] = words[0] if len(words) == 1 else words
        else:
            if i >= len(argv):
                raise ConfigError(f"--{key} needs a value")
            overrides[key], i = argv[i], i + 1
    for key in recipe:
        if key not in hints:
            raise _unknown(key, names, "recipe")
    given = dict(zip(positionals, bare))
    missing = [name for name in positionals if name in _required(cls) and name not in {**recipe, **overrides, **given}]
    if missing:
        raise ConfigError(f"{usage_line(cls, prog, positional)}: {missing[0].upper()} is missing; see {prog} --help")
    return from_dict(cls, {**recipe, **overrides, **given})


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
