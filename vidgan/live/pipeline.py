"""The real-time pipeline: capture thread -> latest-frame slot -> device -> window/record/camera.

Latency stays bounded by construction. The capture thread keeps only the newest frame in a
one-frame slot, so when the model is slower than the source, stale frames are dropped at capture
(and counted), never queued. At most two frames are on the device at once, and a stylized frame
waits for the output loop in a queue of one. Each frame carries its capture time
(time.monotonic()); latency is the time it is presented minus that.

Threads: capture (source.read), inference (this module's `Inference`), and the output loop on
the calling thread, which owns the window (GUI toolkits want the main thread), the recorder and
the virtual camera.
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

from vidgan.errors import VidganError
from vidgan.frames import Stylizer, as_tensor, processing_size
from vidgan.live.sinks import Recorder, ViewState, VirtualCamera, Window, check_display
from vidgan.live.sources import Source, open_source

MAX_IN_FLIGHT = 2
_END = object()  # the inference thread's last item: nothing more will come


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
    """Holds the newest captured frame only; putting a frame replaces an untaken one."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False

    def put(self, frame: Frame) -> bool:
        """Store `frame`; True when it replaced a frame nobody took (a drop)."""
        with self._cond:
            replaced = self._frame is not None
            self._frame = frame
            self._cond.notify()
            return replaced

    def take(self, timeout: float) -> Frame | None:
        """The newest frame, waiting up to `timeout` s; None if none came or the slot is closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

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
                 processing: tuple[int, int]):
        self.source, self.backend, self.size, self.processing = source, backend, size, processing
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

    def recent(self) -> tuple[float, float]:
        """(fps, median latency in ms) over the last ~30 frames shown: for the overlay."""
        if len(self._recent) < 2:
            return 0.0, 0.0
        span = self._recent[-1][0] - self._recent[0][0]
        fps = (len(self._recent) - 1) / span if span > 0 else 0.0
        return fps, 1000 * float(np.median([lat for _, lat in self._recent]))

    def latency_ms(self) -> tuple[float, float]:
        """Capture-to-display latency (p50, p95) in milliseconds over the whole run."""
        if not self.latencies:
            return 0.0, 0.0
        p50, p95 = np.percentile(self.latencies, [50, 95])
        return 1000 * float(p50), 1000 * float(p95)

    def line(self) -> str:
        fps, latency = self.recent()
        return (f"{fps:.1f} fps, latency {latency:.0f} ms | {self.captured} captured, "
                f"{self.shown} shown, {self.dropped} dropped")

    def summary(self) -> str:
        p50, p95 = self.latency_ms()
        skipped = f" (the file source skipped {self.skipped} late frames)" if self.skipped else ""
        (h, w), (ph, pw) = self.size, self.processing
        return (f"live: {self.captured} captured, {self.stylized} stylized, {self.shown} shown, "
                f"{self.dropped} dropped{skipped} | {self.fps:.1f} fps | latency p50 {p50:.0f} ms, "
                f"p95 {p95:.0f} ms | {self.backend} at {pw}x{ph} | {self.source} {w}x{h}")

    def as_dict(self) -> dict:
        p50, p95 = self.latency_ms()
        return {"source": self.source, "backend": self.backend, "size": list(self.size),
                "processing": list(self.processing), "captured": self.captured,
                "stylized": self.stylized, "shown": self.shown, "dropped": self.dropped,
                "skipped": self.skipped, "fps": round(self.fps, 2),
                "latency_p50_ms": round(p50, 1), "latency_p95_ms": round(p95, 1)}


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

    def __init__(self, stylizer: Stylizer, stabilizer=None, max_in_flight: int = MAX_IN_FLIGHT):
        self.stylizer, self.stabilizer = stylizer, stabilizer
        self.device = stylizer.backend.device
        # The stabilizer chains each frame to the previous output and keeps device tensors
        # between calls: one stream keeps that ordered and the allocator's reuse safe.
        lanes = 1 if stabilizer is not None else max_in_flight
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
        """(1, H, W, 3) uint8 on the device -> stylized (H, W, 3) uint8 on the device."""
        y = self.stylizer(x)[0]
        if self.stabilizer is not None:
            y = self.stabilizer(x[0], y)
        return y


class LiveRun:
    """One live session: starts the capture and inference threads and runs the output loop."""

    def __init__(self, source: Source, inference: Inference, stats: LiveStats, state: ViewState,
                 window: Window | None, recorder: Recorder, camera: VirtualCamera | None,
                 max_frames: int | None, duration: float | None, stats_every: float | None,
                 log: TextIO):
        self.source, self.inference, self.stats, self.state = source, inference, stats, state
        self.window, self.recorder, self.camera = window, recorder, camera
        self.max_frames, self.duration, self.stats_every, self.log = (
            max_frames, duration, stats_every, log)
        self.slot = LatestSlot()
        self.results: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._shown: tuple | None = None  # the window's last (original, stylized, view)

    def run(self) -> LiveStats:
        threads = [threading.Thread(target=self._capture, name="live-capture", daemon=True),
                   threading.Thread(target=self._infer, name="live-inference", daemon=True)]
        self.stats.started = time.monotonic()
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
                image = self.source.read()
                if image is None:
                    break
                frame = Frame(self.stats.captured, time.monotonic(), image)
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
        next_line = time.monotonic() + (self.stats_every or 0)
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
            now = time.monotonic()
            if self._limit_reached(now):
                return
            if self.stats_every and now >= next_line:
                print(self.stats.line(), file=self.log, flush=True)
                next_line = now + self.stats_every

    def _present(self, p: Pending) -> None:
        image = p.output.numpy()
        if self.window is not None:
            self._show(p.frame.image, image)
        if self.camera is not None:
            self.camera.send(image)
        self.stats.add_shown(p.frame.captured, time.monotonic())
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
        return (self.state.mode, self.state.paused, self.state.fullscreen, self.recorder.active)

    def _overlay(self) -> str:
        fps, latency = self.stats.recent()
        (ph, pw) = self.stats.processing
        flags = (" | REC" if self.recorder.active else "") + (" | PAUSED" if self.state.paused else "")
        return f"{fps:.1f} fps | {latency:.0f} ms | {self.stats.backend} | {pw}x{ph}{flags}"

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
        """Finalize the recording (or, after an error, remove it) and close window and camera."""
        if self.recorder.active:
            if keep:
                self._stop_recording()
            else:
                self.recorder.abort()
        if self.window is not None:
            self.window.close()
        if self.camera is not None:
            self.camera.close()


def run_live(source: Source | None = None, *, camera: str | None = None,
             screen: bool = False, monitor: int | None = None, region: str | None = None,
             input: str | Path | None = None, capture_size: str | None = None,
             fps: float | None = None, model: str | Path | None = None, backend="auto",
             device: str | None = None, precision: str = "auto", height: int | None = None,
             window: bool | Window = True, record: str | Path | None = None,
             virtual_cam: bool = False, max_frames: int | None = None,
             duration: float | None = None,
             stabilize: bool = False, stabilize_strength: float = 0.7,
             stats_every: float | None = 5.0, log: TextIO | None = None) -> LiveStats:
    """Stylize a live source until it ends, the user quits (q, Esc, Ctrl-C) or a limit is hit.

    source: a `Source`, or None to open the one that camera/screen/monitor/region/input name (see
    `sources.open_source`). backend: a name for `load_backend` or a Backend object.
    height: processing height in pixels (None: the source's); the output keeps the source's
    size. window: True opens the OpenCV window, False runs headless; an object with Window's
    show/poll/close can stand in for it. stats_every: seconds between stats lines when there is
    no window (None: never). log: where messages and the summary go (default: sys.stderr).
    Returns the run's stats (also printed as one summary line); raises SourceLost (exit 2)
    after a clean stop when a camera disconnects.
    """
    if max_frames is not None and max_frames < 1 or duration is not None and duration <= 0:
        raise VidganError("--max-frames and --duration must be positive")
    if source is None:
        source = open_source(camera=camera, screen=screen, monitor=monitor, region=region,
                             input=input, capture_size=capture_size, fps=fps)
    cam = None
    try:  # open everything that can fail on bad input, cheapest first, before any thread
        if window is True:
            check_display()
        recorder = Recorder(record, source.width, source.height, source.rate)
        if virtual_cam:
            cam = VirtualCamera(source.width, source.height, float(source.rate))
        if isinstance(backend, str):
            from vidgan.backends import load_backend

            shape = (1, *processing_size(source.height, source.width, height))
            backend = load_backend(model, backend, device, precision, shapes=[shape])
        inference = _inference(backend, height, stabilize, stabilize_strength)
        inference.warm_up(source.height, source.width)
        win = Window() if window is True else window or None
    except BaseException:
        if cam is not None:
            cam.close()
        source.close()
        raise
    size = (source.height, source.width)
    stats = LiveStats(source.name, f"{backend.name}, {backend.model_name}", size,
                      processing_size(*size, height))
    state = ViewState(recording=record is not None)
    run = LiveRun(source, inference, stats, state, win, recorder, cam, max_frames, duration,
                  None if window else stats_every, log or sys.stderr)
    with _ctrl_c_stops(state):
        return run.run()  # from here the capture thread closes the source


def _inference(backend, height: int | None, stabilize: bool, strength: float) -> Inference:
    stabilizer = None
    if stabilize:
        from vidgan.temporal import Stabilizer

        stabilizer = Stabilizer(strength=strength, device=backend.device)
    return Inference(Stylizer(backend, height), stabilizer)


class _ctrl_c_stops:
    """While active, Ctrl-C asks the run to stop cleanly; a second Ctrl-C interrupts at once."""

    def __init__(self, state: ViewState):
        self.state = state
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.state.quit = True
        signal.signal(signal.SIGINT, self.previous)

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
