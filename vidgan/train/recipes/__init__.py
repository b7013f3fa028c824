"""Training recipes: TOML files shipped in this package (importlib.resources), overridden by flags."""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vidgan.core.errors import VidganError
from vidgan.core.modelfile import CONFIG_VERSION

RECIPES = resources.files(__name__)  # the bundled *.toml files
DEFAULT_RECIPE = "vangogh-fast"


def recipe_path(name_or_path: str | None) -> Path:
    """A recipe file from a path, or from a bundled recipe's name (with or without `.toml`)."""
    name = name_or_path or DEFAULT_RECIPE
    path = Path(name)
    if path.is_file():
        return path
    candidate = RECIPES / (name if name.endswith(".toml") else f"{name}.toml")
    if candidate.is_file():
        return Path(str(candidate))
    known = ", ".join(bundled_recipes()) or "none found"
    raise VidganError(f"recipe {name!r} not found; give a TOML file or one of: {known}")


def bundled_recipes() -> list[str]:
    """Names of the recipes that ship with vidgan ("vangogh-fast", ...)."""
    return sorted(p.name.removesuffix(".toml") for p in RECIPES.iterdir() if p.name.endswith(".toml"))


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


RUN = {"run": True}  # field(metadata=RUN): a value of one run (a path, a device), not the recipe's


def run_field(default=None, default_factory=None):
    """A dataclass field that belongs to the run, not the recipe: saved with checkpoints (a
    resume needs it), never in a model file."""
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=RUN)
    return dataclasses.field(default=default, metadata=RUN)


def saved_config(config, with_run: bool = True) -> dict:
    """A config dataclass as saved: {"version", "recipe": {...}, "run": {...}} (the "run" part
    only `with_run`: checkpoints have it, model files don't, so no local path lands in one)."""
    values = dataclasses.asdict(config)
    run = {f.name for f in dataclasses.fields(config) if f.metadata.get("run")}
    saved = {"version": CONFIG_VERSION,
             "recipe": {k: v for k, v in values.items() if k not in run}}
    if with_run:
        saved["run"] = {k: v for k, v in values.items() if k in run}
    return saved


def from_saved(config_cls, saved: dict, overrides: dict | None = None):
    """The config a checkpoint saved, in any version (a flat dict before version 2), updated
    by `overrides` that are not None."""
    values = {**saved["recipe"], **saved.get("run", {})} if "version" in saved else dict(saved)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
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
