"""The real-time pipeline: capture thread -> latest-frame slot -> device -> window/record/camera.

Latency stays bounded by construction. The capture thread keeps only the newest frame in a
one-frame slot, so when the model is slower than the source, stale frames are dropped at capture
(and counted), never queued; a source read on demand (the screen) is read only when the slot is
wanted, so it costs nothing while the model is busy. At most two frames are on the device at
once, and a stylized frame waits for the output loop in a queue of one. Each frame carries its
capture time (time.monotonic()); latency is the time it is presented minus that.

Threads: capture (source.read), inference (this module's `Inference`), and the output loop on
the calling thread, which owns the window (GUI toolkits want the main thread), the recorder,
the virtual camera and the HTTP server's frame slot (its viewers have threads of their own).
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from vidgan.core.errors import VidganError
from vidgan.core.modelfile import REALTIME
from vidgan.pipelines.live.server import StreamServer
from vidgan.pipelines.live.sinks import Recorder, ViewState, VirtualCamera, Window, check_display
from vidgan.pipelines.live.sources import Source, parse_size
from vidgan.runtime.frames import as_tensor, processing_size
from vidgan.runtime.stylizer import Stylizer

MAX_IN_FLIGHT = 2
_END = object()  # the inference thread's last item: nothing more will come
SLOW_FRACTION = 1 / 3  # a model stylizing under this share of the source's rate gets a hint
HINT_AFTER = 2.0  # seconds of shown frames before judging the model's speed
HINT_HEIGHTS = (360, 270, 240, 180, 144, 120, 90)  # processing heights a hint may suggest
SERVER_STATS_EVERY = 0.5  # seconds between updates of the served /stats.json
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))  # no SIGHUP on Windows


class SourceLost(VidganError):
    """The camera went away mid-run; the run stopped cleanly. `stats` holds what happened."""

    def __init__(self, message: str, stats: LiveStats):
        super().__init__(message)
        self.stats = stats


@dataclass
class Frame:
    index: int  # position in capture order
    captured: float  # time.monotonic() when the source delivered it, seconds
    image: np.ndarray  # RGB uint8 (H, W, 3), the source's size


class LatestSlot:
    """Holds the newest captured frame only; putting a frame replaces an untaken one.

    `wanted` is set from the moment a take finds the slot empty until the next put: a source
    read on demand waits for it (`wait_wanted`) instead of reading as fast as it can.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.wanted = False

    def put(self, frame: Frame) -> bool:
        """Store `frame`; True when it replaced a frame nobody took (a drop)."""
        with self._cond:
            replaced = self._frame is not None
            self._frame = frame
            self.wanted = False
            self._cond.notify_all()
            return replaced

    def take(self, timeout: float) -> Frame | None:
        """The newest frame, waiting up to `timeout` s; None if none came or the slot is closed."""
        with self._cond:
            if self._frame is None:
                self.wanted = True
                self._cond.notify_all()
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

    def wait_wanted(self, timeout: float) -> bool:
        """Wait up to `timeout` s until a take wants a frame; True if one does."""
        with self._cond:
            return self._cond.wait_for(lambda: self.wanted, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """Closed and emptied: the source has ended and its last frame was taken."""
        with self._cond:
            return self._closed and self._frame is None


class LiveStats:
    """Counters and latencies of one live run. Times are time.monotonic() seconds."""

    def __init__(self, source: str, backend: str, size: tuple[int, int],
                 processing: tuple[int, int], model: str = ""):
        self.source, self.backend, self.size, self.processing = source, backend, size, processing
        self.model = model  # the model file's name
        self.captured = self.stylized = self.shown = self.dropped = self.skipped = 0
        self.latencies: list[float] = []
        self.started = time.monotonic()
        self.first_shown = self.last_shown = 0.0
        self._recent: deque[tuple[float, float]] = deque(maxlen=30)  # (presented, latency)

    def add_shown(self, captured: float, presented: float) -> None:
        if self.shown == 0:
            self.first_shown = presented
        self.shown += 1
        self.last_shown = presented
        self.latencies.append(presented - captured)
        self._recent.append((presented, presented - captured))

    @property
    def fps(self) -> float:
        """Frames shown per second, over the whole run."""
        span = self.last_shown - self.first_shown
        return (self.shown - 1) / span if self.shown > 1 and span > 0 else 0.0

    def recent(self) -> tuple[float | None, float | None]:
        """(fps, median latency in ms) over the last ~30 frames shown, for the overlay; None
        until there is a figure (a latency needs one frame shown, a rate two)."""
        if not self._recent:
            return None, None
        span = self._recent[-1][0] - self._recent[0][0]
        fps = (len(self._recent) - 1) / span if span > 0 else None
        return fps, 1000 * float(np.median([lat for _, lat in self._recent]))

    def latency_ms(self) -> tuple[float, float] | tuple[None, None]:
        """Capture-to-display latency (p50, p95) in milliseconds over the whole run; None
        before a frame was shown."""
        if not self.latencies:
            return None, None
        p50, p95 = np.percentile(self.latencies, [50, 95])
        return 1000 * float(p50), 1000 * float(p95)

    def line(self) -> str:
        fps, latency = self.recent()
        return (f"{_figure(fps, '.1f')} fps, latency {_figure(latency)} ms | "
                f"{self.captured} captured, {self.shown} shown, {self.dropped} dropped")

    def summary(self) -> str:
        p50, p95 = self.latency_ms()
        skipped = f" (the file source skipped {self.skipped} late frames)" if self.skipped else ""
        (h, w), (ph, pw) = self.size, self.processing
        fps = _figure(self.fps if self.shown > 1 else None, ".1f")
        return (f"live: {self.captured} captured, {self.stylized} stylized, {self.shown} shown, "
                f"{self.dropped} dropped{skipped} | {fps} fps | latency p50 {_figure(p50)} ms, "
                f"p95 {_figure(p95)} ms | {self.backend}, {self.model} at {pw}x{ph} | "
                f"{self.source} {w}x{h}")

    def now(self) -> dict:
        """The figures a viewer of the served page sees: recent fps and latency (None before
        there is one) and the counters so far."""
        fps, latency = self.recent()
        (h, w), (ph, pw) = self.size, self.processing
        return {"fps": _rounded(fps, 1), "latency_ms": _rounded(latency, 0),
                "captured": self.captured, "stylized": self.stylized, "shown": self.shown,
                "dropped": self.dropped, "backend": self.backend, "model": self.model,
                "processing": f"{pw}x{ph}", "source": self.source, "size": f"{w}x{h}"}

    def as_dict(self) -> dict:
        p50, p95 = self.latency_ms()
        return {"source": self.source, "backend": self.backend, "model": self.model,
                "size": list(self.size),
                "processing": list(self.processing), "captured": self.captured,
                "stylized": self.stylized, "shown": self.shown, "dropped": self.dropped,
                "skipped": self.skipped, "fps": round(self.fps, 2),
                "latency_p50_ms": _rounded(p50, 1), "latency_p95_ms": _rounded(p95, 1)}


def _figure(value: float | None, spec: str = ".0f") -> str:
    """A figure for a person: "-" while there is none yet."""
    return "-" if value is None else format(value, spec)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def slow_hint(fps: float, rate: float, height: int, device: str, student: bool = False
              ) -> str | None:
    """One line of advice when the model stylizes `fps` frames a second of a source giving
    `rate`, at processing `height`; None when it keeps up well enough. The cost of the model
    grows with the pixels, about the square of the height. student: the real-time student
    already runs (no point suggesting it)."""
    if fps >= rate * SLOW_FRACTION:
        return None
    text = f"hint: the model stylizes {fps:.1f} frames a second of the source's {rate:.0f}"
    target = min(rate, 15.0)  # smooth enough to watch
    lower = [h for h in HINT_HEIGHTS if h < height]
    fast_enough = [h for h in lower if fps * (height / h) ** 2 >= target]
    if lower:
        suggested = fast_enough[0] if fast_enough else lower[-1]
        text += f"; a smaller processing height is faster: try --height {suggested}"
    if device == "cpu" and not student:
        text += "; --quality fast runs the real-time student, many times faster on a CPU"
    if device == "cpu":
        text += "; a CUDA GPU is many times faster than a CPU"
    return text


@dataclass
class Pending:
    """A frame submitted to the device; `output` (RGB uint8 (H, W, 3), host) is valid once ready."""

    frame: Frame
    output: torch.Tensor
    done: torch.cuda.Event | None  # None: already complete (CPU)

    def ready(self) -> bool:
        return self.done is None or self.done.query()

    def wait(self) -> None:
        if self.done is not None:
            self.done.synchronize()


class Inference:
    """Stylizes frames in capture order with at most `max_in_flight` on the device at once.

    On CUDA each in-flight frame gets its own stream: the upload from pinned memory, the model
    and the download into pinned memory are all enqueued without waiting, and an event marks the
    output as on the host, so one frame's copies overlap the other's model. The model runs
    themselves are chained by an event: backends may keep state between calls (CUDA graphs'
    static buffers, TensorRT contexts), and two models at once would not finish sooner anyway.
    On the CPU each call completes before it returns.
    """

    def __init__(self, stylizer: Stylizer, max_in_flight: int = MAX_IN_FLIGHT):
        self.stylizer = stylizer
        self.device = stylizer.device
        # The stabilizer chains each frame to the previous output and keeps device tensors
        # between calls: one stream keeps that ordered and the allocator's reuse safe.
        lanes = 1 if stylizer.stabilizer is not None else max_in_flight
        self._streams = ([torch.cuda.Stream(self.device) for _ in range(lanes)]
                         if self.device.type == "cuda" else [])
        self.max_in_flight = max(1, len(self._streams))
        self._submitted = 0
        self._model_done: torch.cuda.Event | None = None

    @torch.inference_mode()
    def submit(self, frame: Frame) -> Pending:
        if not self._streams:
            return Pending(frame, self._stylize(torch.from_numpy(frame.image)[None]), None)
        stream = self._streams[self._submitted % len(self._streams)]
        self._submitted += 1
        with torch.cuda.stream(stream):
            x = as_tensor(frame.image, self.device)  # pinned, non_blocking upload
            if self._model_done is not None:
                stream.wait_event(self._model_done)
            out = self._stylize(x)
            self._model_done = torch.cuda.Event()
            self._model_done.record(stream)
            host = torch.empty(out.shape, dtype=torch.uint8, pin_memory=True)
            host.copy_(out, non_blocking=True)
            done = torch.cuda.Event()
            done.record(stream)
        return Pending(frame, host, done)

    @torch.inference_mode()
    def warm_up(self, height: int, width: int) -> None:
        """Run the model once at the source's size, so the first real frame isn't late
        (CUDA context, cuDNN algorithm search, lazy allocations)."""
        self.stylizer(np.zeros((height, width, 3), np.uint8))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _stylize(self, x: torch.Tensor) -> torch.Tensor:
        """(1, H, W, 3) uint8 on the device -> stylized (and stabilized) (H, W, 3) uint8 on the
        device."""
        return self.stylizer(x)[0]


class LiveRun:
    """One live session: starts the capture and inference threads and runs the output loop."""

    def __init__(self, source: Source, inference: Inference, stats: LiveStats, state: ViewState,
                 window: Window | None, recorder: Recorder, camera: VirtualCamera | None,
                 server: StreamServer | None, max_frames: int | None, duration: float | None,
                 stats_every: float | None, log: TextIO, clock=time.monotonic):
        self.source, self.inference, self.stats, self.state = source, inference, stats, state
        self.window, self.recorder, self.camera, self.server = window, recorder, camera, server
        self.max_frames, self.duration, self.stats_every, self.log = (
            max_frames, duration, stats_every, log)
        self.clock = clock  # capture, presentation and limit times: time.monotonic or a stand-in
        self.speed_judged = False  # the model's speed is judged once, for a hint
        self.slot = LatestSlot()
        self.results: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._shown: tuple | None = None  # the window's last (original, stylized, view)

    def run(self) -> LiveStats:
        threads = [threading.Thread(target=self._capture, name="live-capture", daemon=True),
                   threading.Thread(target=self._infer, name="live-inference", daemon=True)]
        self.stats.started = self.clock()
        for t in threads:
            t.start()
        finished = False
        try:
            self._output_loop()
            finished = True
        finally:
            self.stop.set()
            threads[1].join()
            threads[0].join(timeout=2.0)  # a camera read can block; the thread is a daemon
            self._close_sinks(keep=finished and not self.errors)
        self.stats.skipped = self.source.skipped
        self.stats.dropped = self.stats.captured - self.stats.stylized  # with those cut off by a stop
        print(self.stats.summary(), file=self.log)
        if self.errors:
            raise self.errors[0]
        if self.source.lost:
            kept = f"; recording kept: {self.recorder.saved[-1]}" if self.recorder.saved else ""
            raise SourceLost(f"{self.source.name} disconnected after {self.stats.captured} frames: "
                             f"stopped{kept}", self.stats)
        return self.stats

    # --- threads --------------------------------------------------------------------------

    def _capture(self) -> None:
        try:
            while not self.stop.is_set():
                if self.source.on_demand and not self.slot.wait_wanted(0.05):
                    continue
                image = self.source.read()
                if image is None:
                    break
                frame = Frame(self.stats.captured, self.clock(), image)
                self.stats.captured += 1
                if self.slot.put(frame):
                    self.stats.dropped += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised by run() on the calling thread
            self.errors.append(exc)
        finally:
            self.slot.close()
            self.source.close()

    def _infer(self) -> None:
        pending: deque[Pending] = deque()
        try:
            while not self.stop.is_set():
                while pending and pending[0].ready():
                    self._emit(pending.popleft())
                if len(pending) >= self.inference.max_in_flight:
                    pending[0].wait()
                elif self.state.paused:
                    time.sleep(0.01)  # the capture slot keeps only the newest frame meanwhile
                elif (frame := self.slot.take(0.001 if pending else 0.05)) is not None:
                    pending.append(self.inference.submit(frame))
                elif self.slot.finished:
                    for p in pending:
                        p.wait()
                        self._emit(p)
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised by run() on the calling thread
            self.errors.append(exc)
        finally:
            self._put(_END)

    def _emit(self, p: Pending) -> None:
        self.stats.stylized += 1
        self._put(p)

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.results.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # --- output loop (calling thread) -----------------------------------------------------

    def _output_loop(self) -> None:
        next_line = self.clock() + (self.stats_every or 0)
        next_serve = 0.0
        while not self.state.quit:
            self._sync_recording()
            try:
                item = self.results.get(timeout=0.01)
            except queue.Empty:
                item = None
            if item is _END:
                return
            if item is not None:
                self._present(item)
            if self.window is not None:
                self.window.poll(self.state)
                self._redraw_if_view_changed()
            now = self.clock()
            if self._limit_reached(now):
                return
            if self.stats_every and now >= next_line:
                print(self.stats.line(), file=self.log, flush=True)
                next_line = now + self.stats_every
            if self.server is not None and now >= next_serve:
                self.server.set_stats({**self.stats.now(), "recording": self.recorder.active,
                                       "paused": self.state.paused})
                next_serve = now + SERVER_STATS_EVERY
            self._hint_if_slow(now)

    def _present(self, p: Pending) -> None:
        image = p.output.numpy()
        if self.window is not None:
            self._show(p.frame.image, image)
        if self.camera is not None:
            self.camera.send(image)
        if self.server is not None:
            self.server.publish(image)
        self.stats.add_shown(p.frame.captured, self.clock())
        if self.recorder.active:
            self.recorder.write(image, p.frame.captured)

    def _show(self, original: np.ndarray, stylized: np.ndarray) -> None:
        self.window.show(original, stylized, self.state, self._overlay())
        self._shown = (original, stylized, self._view())

    def _redraw_if_view_changed(self) -> None:
        """Show the last frame again after a key changed the view: paused, no new frame comes."""
        if self._shown is not None and self._shown[2] != self._view():
            self._show(*self._shown[:2])

    def _view(self) -> tuple:
        state = self.state
        return (state.mode, state.paused, state.fullscreen, state.overlay, state.help,
                self.recorder.active)

    def _overlay(self) -> str:
        """Short lines, so they fit a 320-pixel-wide window."""
        fps, latency = self.stats.recent()
        (ph, pw) = self.stats.processing
        flags = (" | REC" if self.recorder.active else "") + (" | PAUSED" if self.state.paused else "")
        return (f"{_figure(fps, '.1f')} fps | {_figure(latency)} ms{flags}\n"
                f"{self.stats.backend} | {pw}x{ph} | h: keys")

    def _hint_if_slow(self, now: float) -> None:
        """Once, when the model has proved far slower than the source, say what helps."""
        if self.speed_judged or not self.stats.shown or now - self.stats.first_shown < HINT_AFTER:
            return
        fps, _ = self.stats.recent()
        if fps is None:
            return
        self.speed_judged = True
        student = self.stats.model == REALTIME.name
        hint = slow_hint(fps, float(self.source.rate), self.stats.processing[0],
                         self.inference.device.type, student)
        if hint:
            print(hint, file=self.log, flush=True)

    def _sync_recording(self) -> None:
        if self.state.recording and not self.recorder.active:
            print(f"recording to {self.recorder.start()}", file=self.log)
        elif not self.state.recording and self.recorder.active:
            self._stop_recording()

    def _stop_recording(self) -> None:
        frames = self.recorder.frames
        path = self.recorder.stop()
        print(f"saved {path} ({frames} frames)" if path else "recording stopped: no frames, "
              "no file", file=self.log)

    def _limit_reached(self, now: float) -> bool:
        return bool((self.max_frames and self.stats.shown >= self.max_frames)
                    or (self.duration and now - self.stats.started >= self.duration))

    def _close_sinks(self, keep: bool) -> None:
        """Finalize the recording (or, after an error, remove it); close window, camera and
        server."""
        if self.recorder.active:
            if keep:
                self._stop_recording()
            else:
                self.recorder.abort()
        if self.window is not None:
            self.window.close()
        if self.camera is not None:
            self.camera.close()
        if self.server is not None:
            self.server.close()


def run_live(source: Source, stylizer: Stylizer, *, window: bool | Window = True,
             window_size: str | None = None, overlay: bool = True,
             record: str | Path | None = None, overwrite: bool = False,
             virtual_cam: bool = False, serve: str | StreamServer | None = None,
             max_frames: int | None = None, duration: float | None = None,
             stats_every: float | None = 5.0, log: TextIO | None = None,
             clock=time.monotonic) -> LiveStats:
    """Stylize a live source (see `sources.open_source`) with `stylizer` until the source ends,
    the user quits (q, Esc, closing the window, Ctrl-C, SIGTERM, SIGHUP) or a limit is hit.

    The output keeps the source's size whatever the stylizer's processing height. window: True
    opens the OpenCV window (window_size "WxH": its size for one picture; overlay: stats shown
    at the start), False runs headless; an object with Window's show/poll/close can stand in
    for it. record: the first take's file (refused if it exists, unless overwrite). serve:
    "[HOST:]PORT" to serve the stream over HTTP (see `server.StreamServer`), or a
    StreamServer. stats_every: seconds between stats lines when there is no window (None:
    never). log: where messages and the summary go (default: sys.stderr). clock: what times
    captures, presentations and --duration (time.monotonic, or a stand-in). Returns the run's
    stats (also printed as one summary line); raises SourceLost (exit 2) after a clean stop
    when a camera disconnects. The source is closed in every case.
    """
    cam = server = None
    log = log or sys.stderr
    try:  # open everything that can fail on bad input, cheapest first, before any thread
        size = check_options(window, window_size, overlay, max_frames, duration)
        if window is True:
            check_display()
        recorder = Recorder(record, source.width, source.height, source.rate, overwrite)
        server = StreamServer(serve) if isinstance(serve, str) else serve
        if virtual_cam:
            cam = VirtualCamera(source.width, source.height, float(source.rate))
        inference = Inference(stylizer)
        inference.warm_up(source.height, source.width)
        win = (Window(size or (source.width, source.height)) if window is True
               else window or None)
    except BaseException:
        for sink in (cam, server):
            if sink is not None:
                sink.close()
        source.close()
        raise
    if server is not None:
        print(f"serving {server.url} (the stream alone: {server.url}stream.mjpg)", file=log,
              flush=True)
    shape = (source.height, source.width)
    stats = LiveStats(source.name, stylizer.name, shape, stylizer.processing_size(*shape),
                      stylizer.model_name)
    state = ViewState(recording=record is not None, overlay=overlay)
    run = LiveRun(source, inference, stats, state, win, recorder, cam, server, max_frames,
                  duration, None if window else stats_every, log, clock)
    with _signals_stop(state):
        return run.run()  # from here the capture thread closes the source


def check_options(window: bool | Window = True, window_size: str | None = None,
                  overlay: bool = True, max_frames: int | None = None,
                  duration: float | None = None) -> tuple[int, int] | None:
    """User errors in run_live's options, before a source opens; the window size (w, h)."""
    if max_frames is not None and max_frames < 1 or duration is not None and duration <= 0:
        raise VidganError("--max-frames and --duration must be positive")
    if not window and (window_size or not overlay):
        raise VidganError("--window-size and --no-overlay are for the window; drop them or "
                          "--no-window")
    return parse_size(window_size, "--window-size")


def live_shapes(source: Source, height: int | None) -> list[tuple]:
    """The (1, H, W) frames a live run of `source` processes, for choosing a backend."""
    return [(1, *processing_size(source.height, source.width, height))]


class _signals_stop:
    """While active, Ctrl-C, SIGTERM and SIGHUP (the terminal closed) stop the run cleanly, as
    q does: the recording is finished and the summary printed. A second one gets the handler
    that was there before (Ctrl-C: interrupt at once). Handlers can only be set from the main
    thread; elsewhere this does nothing."""

    def __init__(self, state: ViewState):
        self.state = state
        self.previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        self.state.quit = True
        self._restore(signum)

    def _restore(self, signum) -> None:
        previous = self.previous.get(signum)
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signum, previous)

    def __exit__(self, *exc) -> None:
        for signum in self.previous:
            self._restore(signum)
