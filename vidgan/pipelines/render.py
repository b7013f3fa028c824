"""The video file pipeline: decode thread -> stylize in batches -> encode thread.

Bounded queues join the stages, so decoding, the model and encoding overlap and memory stays
flat whatever the video's length. Every frame keeps its own timestamp; the output appears under
its name only when complete (vidgan.runtime.video.VideoWriter), and Ctrl-C or an error stops all three
stages and deletes the temporary file.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidgan.core.errors import Interrupted, VidganError
from vidgan.core.progress import Progress
from vidgan.runtime import frames, video
from vidgan.runtime.stylizer import Stylizer

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
    stylizer: Stylizer,
    *,
    output_height: int | None = None,
    batch_size: int = 1,
    codec: str = "h264",
    crf: int = 18,
    preset: str = "veryfast",
    start: float | None = None,
    duration: float | None = None,
    side_by_side: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> RenderResult:
    """Stylize every frame of `input` into `output` with `stylizer`, keeping timestamps and audio.

    output_height: the output's height (None: the input's size). start/duration: seconds.
    side_by_side: before | after, twice as wide. The stylizer's processing height and
    stabilizer apply. Frames of the input that cannot be decoded are counted and reported
    (RenderResult.lost).
    """
    src, dst = Path(input), Path(output)
    check_paths(src, dst, overwrite)
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
        writer = video.VideoWriter(
            dst, out_w * (2 if side_by_side else 1), out_h, info.rate, info.time_base, codec, crf,
            preset, audio_from=src if info.has_audio else None,
            audio_start=reader.begin if start else None,
            audio_end=reader.end or info.end,  # audio past the last frame is dropped
        )
        with writer:
            stylizer.check_memory(info.height, info.width, batch_size,
                                  what=f"a batch of {batch_size} frame(s)" if batch_size > 1 else "a frame")
            stylize = _frame_stylizer(stylizer, (out_h, out_w), side_by_side)
            began = time.perf_counter()
            with Progress("render", reader.expected, enabled=progress) as bar:
                _run(reader, stylize, writer, batch_size, bar)
    except KeyboardInterrupt:
        if writer is not None:
            writer.abort()  # a signal that lands as the `with` enters skips its exit
        done = writer.count if writer else 0
        raise Interrupted(f"interrupted after {done} of {reader.expected or '?'} frames: {dst} was "
                          "not written (it appears only when complete)") from None
    result = RenderResult(dst, writer.count, time.perf_counter() - began, stylizer.name,
                          stylizer.model_name, reader.lost)
    if reader.lost:
        of = f" of {reader.expected}" if reader.expected else ""
        video.warn(f"{reader.lost}{of} frames of {src.name} could not be decoded (the file is "
                   f"damaged or cut short); {dst.name} holds the {writer.count} that could")
    if progress:
        print(f"rendered {result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} fps, "
              f"{result.backend}, {result.model}) -> {dst}")
    return result


def planned_shapes(input: str | Path, height: int | None, batch_size: int = 1) -> list[tuple]:
    """The (N, H, W) batches rendering `input` runs, for choosing a backend (load_backend's
    shapes); [] when `input` can't be probed (render_video then says why)."""
    try:
        info = video.probe(Path(input))
    except VidganError:
        return []
    return [(batch_size, *frames.processing_size(info.height, info.width, height))]


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


def _frame_stylizer(stylizer: Stylizer, size: tuple[int, int], side_by_side: bool):
    """A batch of uint8 frames -> the uint8 frames to encode (at `size`, on the stylizer's
    device): stylized, with the original on the left if side by side."""
    if not side_by_side:
        return lambda images: stylizer(images, size)

    def both(images):
        return frames.side_by_side(*stylizer.pair(images, size))

    return both


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


def _run(reader: video.VideoReader, stylize, writer: video.VideoWriter,
         batch_size: int, bar: Progress) -> None:
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


def _encode(pipes: _Pipes, writer: video.VideoWriter, bar: Progress) -> None:
    while (item := pipes.get(pipes.stylized)) is not _END:
        images, done, stamps = item
        if done is not None:
            done.synchronize()
        for image, (pts, duration) in zip(images.numpy(), stamps):
            writer.write(image, pts, duration)
            bar.advance()
    pipes.stop.set()  # done: lets the main thread stop waiting
