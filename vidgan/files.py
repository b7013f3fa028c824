"""Files that appear under their name only when complete.

Everything vidgan writes goes to a temporary name first; the bytes are written, flushed and
synced to the disk, the size on disk is checked, and only then is the file renamed. A full disk
(or quota, or file-size limit) becomes one VidganError and leaves nothing behind: a library
that ignores a short write cannot leave a truncated file that looks finished.
"""

from __future__ import annotations

import os
from pathlib import Path

from vidgan.errors import NO_ROOM, VidganError, no_room


def partial_path(path: Path) -> Path:
    """Where `path` is written until complete; keeps the extension, which names the format."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def write_atomic(path: str | Path, data: bytes | memoryview) -> Path:
    """Write `data` to `path` whole or not at all (see the module docstring)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")  # not a name any reader globs for (step-*.pt)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked: loop, and any error raises
                view = view[os.write(fd, view):]
            os.fsync(fd)
            if os.fstat(fd).st_size != len(data):
                raise VidganError(f"writing {path} came up short; is the disk full?")
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def sync(path: Path) -> None:
    """Flush a file another library wrote (and closed) to the disk: errors it missed show here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_error(exc: OSError, path: str | Path) -> VidganError:
    """The one-line error for a failed write to `path`."""
    if exc.errno in NO_ROOM:
        return no_room(exc, path)
    return VidganError(f"cannot write {path}: {exc.strerror or exc}")
