"""The one progress display: a rich bar on a terminal, else a plain line every few seconds
(a log file or a job scheduler would only get a live bar's last frame)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Bar


def on_terminal() -> bool:
    return sys.stderr.isatty()


def say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """0:01:05, or 2.5 days."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h < 48 else f"{h / 24:.1f} days"


class Progress:
    """Counted work: done/total, rate and ETA. Use as a context manager, or call close().

    unit: what is counted ("frames", "steps"). say: where plain lines go (default stderr);
    every: seconds between them. start: the count a resumed run starts from; first_line: said
    once when there is no bar. update() and advance() come from one thread, any thread.
    """

    def __init__(self, label: str, total: int | None, unit: str = "frames", *,
                 say: Callable[[str], None] = say_on_stderr, every: float = 5.0, start: int = 0,
                 first_line: str = "", enabled: bool = True, clock=time.monotonic):
        self.label, self.total, self.unit, self.say, self.every = label, total, unit, say, every
        self.start = self.count = start
        self.enabled, self.clock = enabled, clock
        self.started = self.last_line = clock()
        self.bar = None
        if not enabled:
            return
        if on_terminal():
            self._start_bar()
        elif first_line:
            say(f"{first_line}; a progress line every {every:.0f} s")

    def _start_bar(self) -> None:
        self.bar = Bar(TextColumn(f"[bold]{self.label}[/]"), BarColumn(), MofNCompleteColumn(),
                       TextColumn(f"{self.unit}  {{task.fields[rate]:.2f}}/s"),
                       TimeRemainingColumn(), TextColumn("{task.fields[brief]}"),
                       console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task(self.label, total=self.total, completed=self.start,
                                      rate=0.0, brief="")
        self.bar.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        self.update(self.count + n)

    def update(self, done: int, brief: str = "", full: str = "", where: str = "") -> None:
        """done: the count so far; brief: beside the bar; where and full: before and after the
        rate in a plain line."""
        self.count = done
        if not self.enabled:
            return
        now = self.clock()
        rate = (done - self.start) / max(now - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=rate, brief=brief)
        elif now - self.last_line >= self.every or done == self.total:
            self.last_line = now
            self.say(self.line(done, rate, full or brief, where))

    def line(self, done: int, rate: float, detail: str = "", where: str = "") -> str:
        """render: 40/96 frames (41.7%)  12.00/s  ETA 0:00:04"""
        count = f"{done} {self.unit}"
        eta = ""
        if self.total:
            count = f"{done}/{self.total} {self.unit} ({100 * done / self.total:.1f}%)"
            eta = f"  ETA {duration(max(self.total - done, 0) / max(rate, 1e-9))}"
        where = f"  {where}" if where else ""
        return f"{self.label}: {count}{where}  {rate:.2f}/s{eta}  {detail}".rstrip()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@contextmanager
def status(what: str, say: Callable[[str], None] = say_on_stderr) -> Iterator[None]:
    """Work that can't be counted: a spinner with elapsed time on a terminal, else one line."""
    if on_terminal():

        with Console(stderr=True).status(f"{what}..."):
            yield
    else:
        say(f"{what}...")
        yield
