"""Where vidgan keeps what it builds on its own: the per-user cache, never the checkout or the
installed package, and never beside the user's files."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "VIDGAN_CACHE"
ENGINES_ENV = "VIDGAN_ENGINES"


def cache_dir() -> Path:
    """$VIDGAN_CACHE, else $XDG_CACHE_HOME/vidgan, else ~/.cache/vidgan."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vidgan"


def engines_dir() -> Path:
    """ONNX exports and TensorRT engines: $VIDGAN_ENGINES, else engines/ in the cache."""
    if os.environ.get(ENGINES_ENV):
        return Path(os.environ[ENGINES_ENV])
    return cache_dir() / "engines"


def results_dir() -> Path:
    """Where `vidgan bench` writes its JSON unless told --out: results/ in the cache."""
    return cache_dir() / "results"


def writable(folder: Path) -> bool:
    """Whether files can be written in `folder`, creating it if needed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)
