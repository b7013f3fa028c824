"""User errors: what went wrong and what to do, shown as one line by the CLI."""

from __future__ import annotations

import errno
from pathlib import Path

# write errors that mean "no room": a full disk, a full quota, a file-size limit
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class VidganError(Exception):
    """A mistake in the user's input or setup; the CLI prints `error: <message>` and exits."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP stopped a command; `message` is the one line saying what was
    kept ("interrupted: 19 of 40 images written to out/"). A KeyboardInterrupt, so that code
    which cleans up on Ctrl-C cleans up on this too."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def no_room(exc: OSError, path: str | Path) -> VidganError:
    """The one-line error for a write to `path` that failed for want of space."""
    return VidganError(f"cannot write {path}: {exc.strerror or 'no space left'} (the disk, a "
                       "quota or a file-size limit is full); free some space and run again")
