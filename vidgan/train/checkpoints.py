"""What training and distillation share: checkpoints written whole and found again, the RNG
state that makes a resumed run exact, and the stop flag that Ctrl-C, SIGTERM and SIGHUP set."""

from __future__ import annotations

import io
import random
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from vidgan.core.errors import VidganError
from vidgan.core.files import write_atomic


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])



class StopFlag:
    """Set by Ctrl-C, SIGTERM or SIGHUP: the step in flight finishes, a checkpoint is written.

    A second Ctrl-C stops at once. Signals within a second of the first count as the same one:
    under torchrun, workers get the terminal's SIGINT and then the agent's copy of it.
    """

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name))

    def __init__(self):
        self.set_at: float | None = None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _handle(self, *_):
        if self.set_at is None:
            self.set_at = time.monotonic()
        elif time.monotonic() - self.set_at > 1.0:
            raise KeyboardInterrupt

    def __bool__(self) -> bool:
        return self.set_at is not None

    def check(self, world: int, device: torch.device) -> bool:
        """Whether to stop; under DDP, all ranks stop together if any rank was signalled."""
        if world > 1:
            flag = torch.tensor([float(bool(self))], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() and self.set_at is None:
                self.set_at = time.monotonic()
        return bool(self)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals(_worker_id: int) -> None:
    """A data loader worker's init: stop signals are the main process's to handle (it finishes
    the step and saves a checkpoint). A worker killed by one (`timeout`, or `kill` of the
    process group) would crash the run at its next batch instead."""
    for sig in StopFlag.SIGNALS:
        signal.signal(sig, signal.SIG_IGN)



def checkpoints(out: str | Path) -> list[Path]:
    """The checkpoint files of a run folder, oldest first (readable or not)."""
    return sorted((Path(out) / "checkpoints").glob("step-*.pt"))


def latest_checkpoint(out: str | Path, keys: set[str]) -> Path | None:
    """The newest checkpoint of `out` that can be read and holds `keys`; None when the run has
    none.

    A damaged one (cut short by a crash or a full disk, empty, garbage) is passed over with a
    warning for the one before it; when none can be read, a VidganError says so.
    """
    found = checkpoints(out)
    for path in reversed(found):
        problem = checkpoint_problem(path, keys)
        if problem is None:
            return path
        # warnings.warn, not a print: `train --resume` looks twice (config, then weights), and
        # Python shows the same warning from the same line once
        warnings.warn(f"checkpoint {path} cannot be read ({problem}); trying the one before",
                      stacklevel=1)
    if found:
        raise VidganError(f"none of the {len(found)} checkpoint(s) in {found[0].parent} can be "
                          "read; start a new run (another --out, without --resume)")
    return None


def checkpoint_problem(path: Path, keys: set[str]) -> str | None:
    """Why `path` is not a readable vidgan checkpoint, or None. Memory-mapped: the index at the
    end of the file is read (a file cut short has none), the tensors are not."""
    if path.stat().st_size == 0:
        return "empty file"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for damaged files
        return first_line(exc)
    missing = keys - set(ckpt) if isinstance(ckpt, dict) else keys
    return f"no {', '.join(sorted(missing))}" if missing else None


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]



def write_checkpoint(out: Path, payload: dict, step: int, keep: int) -> Path:
    """out/checkpoints/step-N.pt, written whole or not at all; keeps the newest `keep`.

    Serialized in memory and written by vidgan.core.files.write_atomic: torch.save straight to a file
    reports a full disk as an "unexpected pos" RuntimeError and leaves the partial file behind.
    """
    folder = out / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:09d}.pt"
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getbuffer())
    # Checkpoints past this step are ones a resume passed over as unreadable: left, they would
    # outrank this run's own in the pruning below and in the next resume.
    found = checkpoints(out)
    stale = [p for p in found if p.name > path.name]
    for old in stale + [p for p in found if p not in stale][:-keep]:
        old.unlink()
    return path
