"""Training recipes: TOML files in the repository's train/ folder, overridden by flags."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vidgan.errors import VidganError

RECIPE_DIR = Path(__file__).resolve().parent.parent / "train"
DEFAULT_RECIPE = "vangogh-fast"


def recipe_path(name_or_path: str | None) -> Path:
    """A recipe file from a path, or from a name in train/ (with or without `.toml`)."""
    name = name_or_path or DEFAULT_RECIPE
    path = Path(name)
    if path.is_file():
        return path
    candidate = RECIPE_DIR / (name if name.endswith(".toml") else f"{name}.toml")
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))) or "none found"
    raise VidganError(f"recipe {name!r} not found; give a TOML file or one of: {known}")


def load_config(config_cls, recipe: str | None, overrides: dict):
    """Fill `config_cls` (a dataclass) from a recipe, then from non-None `overrides`."""
    path = recipe_path(recipe)
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise VidganError(f"recipe {path} is not valid TOML: {exc}") from None
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise VidganError(f"recipe {path} has unknown key(s): {', '.join(unknown)}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["recipe"] = str(path.name)
    return config_cls(**values)


def check_types(config) -> None:
    """VidganError when a field of the dataclass `config` does not hold its declared type: a
    recipe's `crop = "big"` is caught here rather than as a traceback deep in training."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not _holds(value, hints[f.name]):
            raise VidganError(f"{f.name} must be {_describe(hints[f.name])}, not {value!r}")


def _holds(value, kind) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_holds(value, a) for a in args)
    if kind is type(None):
        return value is None
    if isinstance(value, bool):  # a bool is an int to Python, never to a recipe
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if origin is list:
        return isinstance(value, list) and all(_holds(v, args[0]) for v in value)
    return isinstance(value, origin or kind)


def _describe(kind) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is list:
        return f"a list of {_describe(args[0])} values"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
            dict: "a table ({ key = value, ... })"}.get(kind, kind.__name__)
