"""The video file pipeline: decode thread -> stylize in batches -> encode thread.

Bounded queues join the stages, so decoding, the model and encoding overlap and memory stays
flat whatever the video's length. Every frame keeps its own timestamp; the output appears under
its name only when complete (vidgan.runtime.video.VideoWriter), and Ctrl-C or an error stops all three
stages and deletes the temporary file.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidgan.runtime import frames
from vidgan.runtime import video
from vidgan.core.errors import Interrupted, VidganError

_END = object()  # sentinel closing a queue


@dataclass
class RenderResult:
    path: Path
    frames: int
    seconds: float
    backend: str
    model: str  # the model file's name
    lost: int  # frames of the input that could not be decoded (VideoReader.lost)

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def render_video(
    input: str | Path,
    output: str | Path,
    *,
    model: str | Path | None = None,
    backend="auto",
    device: str | None = None,
    precision: str = "auto",
    height: int | None = None,
    output_height: int | None = None,
    batch_size: int = 1,
    codec: str = "h264",
    crf: int = 18,
    preset: str = "veryfast",
    start: float | None = None,
    duration: float | None = None,
    side_by_side: bool = False,
    overwrite: bool = False,
    stabilize: bool = False,
    stabilize_strength: float | None = None,
    progress: bool = True,
) -> RenderResult:
    """Stylize every frame of `input` into `output`, keeping timestamps and audio.

    backend: a name for vidgan.runtime.backends.load_backend ("auto", "torch", ...) or a Backend object;
    model, device and precision go to load_backend.
    height: the processing height (None: the video's own); output_height: the output's height
    (None: the input's size). start/duration: seconds. side_by_side: before | after, twice as
    wide. stabilize: reduce flicker with vidgan.runtime.temporal.Stabilizer(stabilize_strength, default
    0.7; giving a strength without `stabilize` is an error, not silently ignored).
    Frames of the input that cannot be decoded are counted and reported (RenderResult.lost).
    """
    from vidgan.runtime.temporal import stabilize_strength_option

    src, dst = Path(input), Path(output)
    check_paths(src, dst, overwrite)
    strength = stabilize_strength_option(stabilize, stabilize_strength)
    if batch_size < 1:
        raise VidganError(f"--batch-size must be at least 1, not {batch_size}")
    video.encoder_name(codec)
    video.check_quality(crf, preset)
    info = video.probe(src)
    start, duration = _span(info, start, duration)
    reader = video.VideoReader(info, start, duration)
    out_h, out_w = frames.processing_size(info.height, info.width, output_height)
    writer = None
    try:
        with video.VideoWriter(
            dst, out_w * (2 if side_by_side else 1), out_h, info.rate, info.time_base, codec, crf,
            preset, audio_from=src if info.has_audio else None,
            audio_start=reader.begin if start else None,
            audio_end=reader.end or info.end,  # audio past the last frame is dropped
        ) as writer:
            shape = (batch_size, *frames.processing_size(info.height, info.width, height))
            be = _backend(backend, model, device, precision, shape)
            _check_memory(info, height, batch_size, model, backend, be)
            stylize = _FrameStylizer(be, height, (out_h, out_w), side_by_side,
                                     strength if stabilize else None)
            began = time.perf_counter()
            with FrameProgress("render", reader.expected, enabled=progress) as bar:
                _run(reader, stylize, writer, batch_size, bar)
    except KeyboardInterrupt:
        done = f" after {writer.count} of {reader.expected or '?'} frames" if writer else ""
        raise Interrupted(f"interrupted{done}: {dst} was not written (it appears only when "
                          "complete)") from None
    result = RenderResult(dst, writer.count, time.perf_counter() - began, be.name, be.model_name,
                          reader.lost)
    if reader.lost:
        of = f" of {reader.expected}" if reader.expected else ""
        video.warn(f"{reader.lost}{of} frames of {src.name} could not be decoded (the file is "
                   f"damaged or cut short); {dst.name} holds the {writer.count} that could")
    if progress:
        print(f"rendered {result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} fps, "
              f"{result.backend}, {result.model}) -> {dst}")
    return result


def check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    """User errors about the paths, before any slow work."""
    if not src.exists():
        raise VidganError(f"{src} does not exist")
    if dst.resolve() == src.resolve():
        raise VidganError(f"the output {dst} is the input; choose another output name")
    if dst.is_dir():
        raise VidganError(f"{dst} is a folder; give an output file name such as {dst / 'out.mp4'}")
    if dst.exists() and not overwrite:
        raise VidganError(f"{dst} already exists; pass --overwrite to replace it")
    if not dst.parent.is_dir():
        raise VidganError(f"the output folder {dst.parent} does not exist")


def _check_memory(info: video.VideoInfo, height: int | None, batch_size: int, model, backend,
                  be) -> None:
    """Refuse a processing size that cannot fit, before the first frame is decoded. With a
    Backend object and no `model`, the architecture is unknown and this is skipped."""
    from vidgan.core import modelfile

    if not isinstance(backend, str) and model is None:
        return
    per_pixel = modelfile.read_info(modelfile.resolve(model)).bytes_per_pixel()
    h, w = frames.processing_size(info.height, info.width, height)
    frames.check_memory(h, w, per_pixel, be.device, batch_size,
                        what=f"a batch of {batch_size} frame(s)" if batch_size > 1 else "a frame")


def _span(info: video.VideoInfo, start: float | None, duration: float | None):
    start = start or 0.0
    for name, value in (("--start", start), ("--duration", duration)):
        if value is not None and not math.isfinite(value):
            raise VidganError(f"{name} must be a number of seconds, not {value}")
    if start < 0:
        raise VidganError(f"--start must be 0 or more seconds, not {start}")
    if info.duration is not None and start >= info.duration:
        raise VidganError(f"--start {start} s is past the end of {info.path} ({info.duration:.2f} s)")
    if duration is not None and duration <= 0:
        raise VidganError(f"--duration must be more than 0 seconds, not {duration}")
    return start, duration


def _backend(backend, model, device, precision, shape: tuple[int, int, int]):
    if not isinstance(backend, str):
        return backend
    from vidgan.runtime.backends import load_backend

    return load_backend(model, backend, device, precision, shapes=[shape])


class _FrameStylizer:
    """A batch of uint8 frames -> the uint8 frames to encode, on the backend's device:
    stylized (and stabilized, frame by frame), with the original on the left if side by side."""

    def __init__(self, backend, height: int | None, size: tuple[int, int], side_by_side: bool,
                 stabilize_strength: float | None):
        self.device = backend.device
        self.stylizer = frames.Stylizer(backend, height, size)
        self.size = size
        self.side_by_side = side_by_side
        self.stabilizer = None
        if stabilize_strength is not None:
            from vidgan.runtime.temporal import Stabilizer

            self.stabilizer = Stabilizer(strength=stabilize_strength, device=backend.device)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = frames.as_tensor(images, self.device)
        y = self.stylizer(x)
        if self.stabilizer is None and not self.side_by_side:
            return y
        original = frames.resize_frames(x, self.size)
        if self.stabilizer is not None:
            for i in range(len(y)):
                y[i] = self.stabilizer(original[i], y[i])
        return torch.cat([original, y], dim=2) if self.side_by_side else y


class _Stopped(Exception):
    """Raised in a stage when another stage failed or the user interrupted."""


class _Pipes:
    """Bounded queues between the stages, a shared stop flag and the first error of a stage.

    Every wait polls the stop flag, so no stage can block forever on a dead neighbour.
    """

    def __init__(self, batch_size: int):
        self.decoded: queue.Queue = queue.Queue(maxsize=2 * batch_size)  # frames
        self.stylized: queue.Queue = queue.Queue(maxsize=2)  # batches
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                pass
        raise _Stopped

    def get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass
        raise _Stopped

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop.set()


def _run(reader: video.VideoReader, stylize: _FrameStylizer, writer: video.VideoWriter,
         batch_size: int, bar: FrameProgress) -> None:
    pipes = _Pipes(batch_size)
    threads = [
        threading.Thread(target=_stage, args=(pipes, _decode, reader), name="decode", daemon=True),
        threading.Thread(target=_stage, args=(pipes, _encode, writer, bar), name="encode", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        for batch in _batches(pipes, batch_size):
            images = np.stack([f.image for f in batch]) if len(batch) > 1 else batch[0].image[None]
            host, done = to_host(stylize(images))
            pipes.put(pipes.stylized, (host, done, [(f.pts, f.duration) for f in batch]))
        pipes.put(pipes.stylized, _END)
        while threads[1].is_alive() and not pipes.stop.is_set():
            threads[1].join(timeout=0.1)
    except _Stopped:
        pass
    except BaseException as exc:  # noqa: BLE001 -- Ctrl-C included: re-raised below, after the threads stop
        pipes.fail(exc)
    finally:
        pipes.stop.set()
        for t in threads:
            t.join(timeout=5)  # they poll the stop flag; daemons never keep the process alive
    if pipes.error is not None:
        raise pipes.error


def _stage(pipes: _Pipes, work, *args) -> None:
    try:
        work(pipes, *args)
    except _Stopped:
        pass
    except BaseException as exc:  # noqa: BLE001 -- handed to the main thread, which re-raises it
        pipes.fail(exc)


def _decode(pipes: _Pipes, reader: video.VideoReader) -> None:
    for frame in reader:
        pipes.put(pipes.decoded, frame)
    pipes.put(pipes.decoded, _END)


def _batches(pipes: _Pipes, size: int):
    """Lists of up to `size` decoded frames, the last one possibly shorter."""
    while True:
        batch = []
        while len(batch) < size:
            item = pipes.get(pipes.decoded)
            if item is _END:
                if batch:
                    yield batch
                return
            batch.append(item)
        yield batch


def to_host(images: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start copying a stylized batch to the host: (host tensor, event marking the copy done).

    On CUDA the copy goes into pinned memory without blocking, so the model's thread goes on to
    the next batch while the encode thread waits for the event (as live does). A CPU batch is
    already there: (images, None).
    """
    if images.device.type != "cuda":
        return images, None
    host = torch.empty(images.shape, dtype=images.dtype, pin_memory=True)
    host.copy_(images, non_blocking=True)
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(images.device))
    return host, done


def _encode(pipes: _Pipes, writer: video.VideoWriter, bar: FrameProgress) -> None:
    while (item := pipes.get(pipes.stylized)) is not _END:
        images, done, stamps = item
        if done is not None:
            done.synchronize()
        for image, (pts, duration) in zip(images.numpy(), stamps):
            writer.write(image, pts, duration)
            bar.advance()
    pipes.stop.set()  # done: lets the main thread stop waiting


class FrameProgress:
    """Progress of counted work: a rich bar (count, rate, ETA) when stderr is a terminal, a
    plain line every `every` seconds otherwise. One thread calls `advance()`, any thread."""

    def __init__(self, label: str, total: int | None, unit: str = "frames", enabled: bool = True,
                 every: float = 5.0):
        self.label, self.total, self.unit, self.enabled, self.every = label, total, unit, enabled, every
        self.count = 0
        self.bar = None

    def __enter__(self):
        self.began = self.last_line = time.perf_counter()
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn(f"[bold]{self.label}[/]"), BarColumn(), MofNCompleteColumn(),
                                TextColumn(f"{self.unit}  {{task.fields[rate]:.1f}}/s"),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(self.label, total=self.total, rate=0.0)
            self.bar.start()
        return self

    def advance(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = self.count / max(now - self.began, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.count, rate=rate)
        elif now - self.last_line >= self.every:
            self.last_line = now
            print(self._line(rate), file=sys.stderr, flush=True)

    def _line(self, rate: float) -> str:
        if not self.total:
            return f"{self.label}: {self.count} {self.unit}, {rate:.1f}/s"
        eta = max(self.total - self.count, 0) / max(rate, 1e-9)
        return f"{self.label}: {self.count}/{self.total} {self.unit}, {rate:.1f}/s, ETA {eta:.0f} s"

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
