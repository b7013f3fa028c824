"""Files that appear under their name only when complete: the one write-then-rename helper.

Everything vidgan writes goes to a temporary name first; the bytes are written, flushed and
synced to the disk, and only then is the file renamed. A full disk (or quota, or file-size
limit) becomes one VidganError and leaves nothing behind: a library that ignores a short write
cannot leave a truncated file that looks finished.

    write_atomic(path, data)        bytes (or text) vidgan has in memory
    with atomic_path(path) as tmp:  a file another library writes by name (onnx, PyAV, PIL)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidgan.core.errors import NO_ROOM, VidganError, no_room


def partial_path(path: Path, keep_suffix: bool = False) -> Path:
    """Where `path` is written until complete: `name.partial`, which no reader globs for
    (step-*.pt); with `keep_suffix`, `stem.partial.suffix` for libraries that pick the format
    from the name (PyAV)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}" if keep_suffix else f"{path.name}.partial")


def write_atomic(path: str | Path, data: bytes | memoryview | str) -> Path:
    """Write `data` (str as UTF-8) to `path` whole or not at all (see the module docstring);
    the folder is created if missing."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked: loop, and any error raises
                view = view[os.write(fd, view):]
            if os.fstat(fd).st_size != len(data):
                raise VidganError(f"writing {path} came up short; is the disk full?")
        finally:
            os.close(fd)
    return path


@contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary name (partial_path) to write `path` under; when the block ends without an
    error the file is synced and renamed to `path`, otherwise removed. OSErrors become one
    VidganError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path, keep_suffix)
    try:
        yield tmp
        commit(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def commit(tmp: Path, path: Path) -> None:
    """Sync the complete file `tmp` (errors a library missed show here) and rename it to `path`."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_error(exc: OSError, path: str | Path) -> VidganError:
    """The one-line error for a failed write to `path`."""
    if exc.errno in NO_ROOM:
        return no_room(exc, path)
    return VidganError(f"cannot write {path}: {exc.strerror or exc}")
