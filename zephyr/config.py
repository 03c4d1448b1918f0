"""Stage configuration: a dataclass per stage, filled from a YAML recipe, then `--key value` overrides.

The precedence is alignment-handbook's: dataclass defaults < YAML recipe < command line.
Every field carries a one-line `help` in its metadata, which `--help` prints with the default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")


def field(default: Any = dataclasses.MISSING, help: str = "", **kwargs) -> Any:
    """A dataclass field with a one-line meaning shown by `--help`. Mutable defaults are copied."""
    metadata = {"help": help}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


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
    """Turn a YAML or command-line value into the field's declared type, or raise ConfigError naming the field."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional or inner is Any:
            return None
        raise ConfigError(f"field '{name}' may not be empty")
    origin = typing.get_origin(inner)
    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
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
                value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
            (item_tp,) = typing.get_args(inner)[:1] or (Any,)
            return [coerce(name, v, item_tp) if item_tp is not Any else v for v in value]
        if origin is dict:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError, json.JSONDecodeError) as err:
        raise ConfigError(f"field '{name}': cannot read {value!r} as {_type_name(tp)}") from err
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


def from_dict(cls: type[T], values: dict[str, Any], where: str = "recipe") -> T:
    """Build `cls` from a mapping, rejecting unknown keys with the nearest valid name."""
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise _unknown(key, names, where)
        kwargs[key] = coerce(key, value, hints[key])
    return cls(**kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; pass the recipe's YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"recipe not found: {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of field: value")
    return data


def format_help(cls: type, prog: str) -> str:
    """Every field with its type, default and one-line meaning."""
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    lines = [f"usage: {prog} [--config RECIPE.yaml] [--FIELD VALUE ...]", "", doc, "", "fields (YAML key or --flag):"]
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        lines.append(f"  --{f.name} {_type_name(hints[f.name])}  (default: {default!r})")
        if f.metadata.get("help"):
            lines.append(f"      {f.metadata['help']}")
    return "\n".join(lines)


def parse_args(cls: type[T], argv: list[str] | None = None, prog: str = "zephyr",
               positional: str | None = None) -> T:
    """`[--config recipe.yaml] [POSITIONAL] [--key value | --key=value | --flag] ...` -> cls.

    `positional` names the field that a bare argument fills (e.g. the recipe folder or model path).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(format_help(cls, prog))
        raise SystemExit(0)
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    recipe: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            if positional is None or positional in overrides:
                raise ConfigError(f"unexpected argument '{arg}'")
            overrides[positional] = arg
            i += 1
            continue
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key == "config":
            if not eq:
                i += 1
                if i >= len(argv):
                    raise ConfigError("--config needs a YAML path")
                value = argv[i]
            recipe.update(load_yaml(value))
            i += 1
            continue
        if key not in hints:
            raise _unknown(key, names, "command line")
        if not eq:
            inner, _ = _unwrap_optional(hints[key])
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if inner is bool and (nxt is None or nxt.startswith("--") or nxt.lower() not in
                                  ("true", "false", "1", "0", "yes", "no", "on", "off")):
                value = "true"
            else:
                if nxt is None:
                    raise ConfigError(f"--{key} needs a value")
                value = nxt
                i += 1
        overrides[key] = value
        i += 1
    for key in recipe:
        if key not in hints:
            raise _unknown(key, names, "recipe")
    return from_dict(cls, {**recipe, **overrides})


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_yaml(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
