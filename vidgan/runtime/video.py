"""PyAV reading and writing of video files: frames with their own timestamps, rotation, audio.

Frames are RGB uint8 numpy arrays (H, W, 3), upright: the container's rotation (display matrix)
is applied on decode and the output carries none. Timestamps are integers in the stream's
time_base and travel with each frame, so odd and variable frame rates survive decode -> encode.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

# cv2 before av: an OpenCV window in a process that loaded PyAV first hangs (PyAV#978)
import cv2  # isort: skip
import av
import numpy as np

from vidgan.core.errors import VidganError
from vidgan.core.files import commit, partial_path, write_error

# what users type -> the PyAV encoder; crf/preset mean the same to x264 and x265
ENCODERS = {
    "h264": "libx264", "libx264": "libx264", "hevc": "libx265", "h265": "libx265",
    "libx265": "libx265", "h264_nvenc": "h264_nvenc", "hevc_nvenc": "hevc_nvenc",
}
# x264 preset names (x265 has the same) -> NVENC's p1 (fastest) .. p7 (best)
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p4", "fast": "p4",
                 "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7"}
CRF_RANGE = (0, 51)  # x264's and x265's --crf, NVENC's cq
MAX_SIDE = 16384  # libx264's largest width or height (x265's and NVENC's are smaller still)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream of a file. width/height are upright (after `rotation`)."""

    path: Path
    width: int
    height: int
    rotation: int  # degrees counter-clockwise that make decoded frames upright: 0, 90, 180, 270
    rate: Fraction  # average frames per second; a hint, the timestamps are what count
    time_base: Fraction
    start_time: float  # seconds, the first frame's timestamp
    duration: float | None  # seconds: the stream's, else the container's (an estimate)
    end: float | None  # seconds, where the video stream ends when it says so
    frames: int | None
    has_audio: bool
    frames_exact: bool = False  # `frames` is the container's own count, not duration x rate


class Frame(NamedTuple):
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright
    pts: int | None  # in the stream's time_base
    duration: int | None  # in the stream's time_base


def probe(path: str | Path) -> VideoInfo:
    """Open `path`, check it holds a decodable video stream and describe it."""
    path = Path(path)
    if not path.exists():
        raise VidganError(f"{path} does not exist")
    if path.is_dir():
        raise VidganError(f"{path} is a folder, not a video file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise VidganError(f"{path} is not a video file FFmpeg can read ({_reason(exc)})") from None
    with container:
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            raise VidganError(f"{path} is an image, not a video; use `vidgan stylize` for images")
        if not container.streams.video:
            raise VidganError(f"{path} has no video stream")
        stream = container.streams.video[0]
        first = _first_frame(container, stream)
        if first is None:
            raise VidganError(f"{path} has a video stream but no frame could be decoded")
        rate = Fraction(stream.average_rate or stream.guessed_rate or 30)
        tb = Fraction(stream.time_base or 1 / rate)
        start = float((stream.start_time or 0) * tb)
        end = start + float(stream.duration * tb) if stream.duration else None
        duration = end - start if end is not None else _container_seconds(container)
        frames = stream.frames or (round(duration * rate) if duration else None)
        rotation = round(first.rotation / 90) % 4 * 90
        w, h = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        return VideoInfo(path, w, h, rotation, rate, tb, start, duration, end, frames,
                         has_audio=bool(container.streams.audio), frames_exact=stream.frames > 0)


def _first_frame(container, stream):
    """The first frame that decodes: a damaged first keyframe is no reason to refuse a file
    whose later keyframes decode (VideoReader starts at the first one that does)."""
    for packet in _packets(container, stream):
        try:
            for frame in packet.decode():
                return frame
        except av.FFmpegError:
            continue
    return None


def _packets(container, stream):
    """The stream's packets until the end, or until the demuxer can read no further (damaged
    data it cannot resynchronize after ends the readable part; the frames lost are counted)."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.FFmpegError):
            return
        yield packet


def _container_seconds(container) -> float | None:
    return container.duration / av.time_base if container.duration else None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


class VideoReader:
    """Decodes the first video stream in order: upright frames with their own timestamps.

    start/duration (seconds, relative to the first frame) select a span; with a start, the
    timestamps are shifted so that the span begins at 0 (`shift`, in time_base units).

    Frames that cannot be decoded are skipped and counted in `lost` (see there). Timestamps
    that go backwards (a broken mux, two clips joined) are moved to one frame after the frame
    before, and the frames after them keep their own spacing from there.
    """

    def __init__(self, info: VideoInfo, start: float = 0.0, duration: float | None = None):
        self.info = info
        self.begin = info.start_time + start  # absolute seconds
        self.end = self.begin + duration if duration is not None else None
        self.shift = round(self.begin / info.time_base) if start > 0 else 0
        self.expected = expected_frames(info, start, duration)
        self.corrupt = 0  # packets the decoder refused
        self.decoded = 0
        self.finished = False  # read to the end of the stream or span
        self._step = max(1, round(1 / (info.rate * info.time_base)))  # one frame, in time_base
        self._offset = 0  # added to timestamps after one went backwards
        self._last: int | None = None

    @property
    def lost(self) -> int:
        """Frames lost so far: packets the decoder refused; once the stream is read to its end,
        also the frames the container promised (`expected`) that never came (a file cut short,
        a damaged stretch). A count that is only duration x rate is trusted to 2 frames or 2%."""
        missing = 0
        if self.finished and self.expected is not None:
            exact = self.info.frames_exact and self.end is None and not self.shift
            slack = 0 if exact else max(2, round(0.02 * self.expected))
            missing = self.expected - self.decoded if self.expected - self.decoded > slack else 0
        return max(self.corrupt, missing)

    def __iter__(self) -> Iterator[Frame]:
        """Frames with duration = the gap to the next frame, so the last one ends where the
        stream (or the span) ends: packet durations are unreliable after B-frame reordering.
        A last frame is never stretched over missing time: when the stream ends more than two
        frames after it (a file cut short), it lasts as long as the frame before."""
        held, gap = None, None
        for image, pts in self._decoded():
            pts = self._steady(pts)
            self.decoded += 1
            if held is not None:
                gap = _gap(held[1], pts)
                yield Frame(held[0], held[1], gap)
            held = image, pts
        self.finished = True
        if held is not None:
            typical = gap or self._step
            to_end = _gap(held[1], self._end_pts())
            yield Frame(held[0], held[1], to_end if to_end and to_end <= 2 * typical else typical)

    def _steady(self, pts: int | None) -> int | None:
        if pts is None:
            return None
        pts += self._offset
        if self._last is not None and pts <= self._last:
            self._offset += self._last + self._step - pts
            pts = self._last + self._step
        self._last = pts
        return pts

    def _decoded(self) -> Iterator[tuple[np.ndarray, int | None]]:
        eps = 1e-6
        k = self.info.rotation // 90
        with av.open(str(self.info.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.shift:
                container.seek(self.shift, stream=stream)  # to the keyframe before
            for packet in _packets(container, stream):
                try:
                    decoded = packet.decode()
                except av.FFmpegError:  # damaged data; the decoder resumes at a keyframe
                    self.corrupt += 1
                    continue
                for frame in decoded:
                    t = frame.time
                    if t is not None and t < self.begin - eps:
                        continue
                    if t is not None and self.end is not None and t >= self.end - eps:
                        return
                    image = frame.to_ndarray(format="rgb24")
                    if k:
                        image = np.ascontiguousarray(np.rot90(image, k))
                    yield image, None if frame.pts is None else frame.pts - self.shift

    def _end_pts(self) -> int | None:
        ends = [t for t in (self.end, self.info.end) if t is not None]
        return round(min(ends) / self.info.time_base) - self.shift if ends else None


def expected_frames(info: VideoInfo, start: float = 0.0, duration: float | None = None) -> int | None:
    """How many frames the stream (or the span from `start`, `duration` long) should hold."""
    if not (start or duration):
        return info.frames
    if info.duration is None:
        return None
    seconds = info.duration - start if duration is None else min(duration, info.duration - start)
    return max(1, round(seconds * info.rate))


def _gap(pts: int | None, next_pts: int | None) -> int | None:
    if pts is None or next_pts is None or next_pts <= pts:
        return None
    return next_pts - pts


def encoder_name(codec: str) -> str:
    """The PyAV encoder behind a --codec value; VidganError when unknown or not usable here
    (NVENC needs an NVIDIA GPU and its driver, whatever FFmpeg was built with)."""
    name = ENCODERS.get(codec)
    if name is not None and "nvenc" in name and name in av.codecs_available and not nvenc_available():
        raise VidganError(f"--codec {codec} encodes on an NVIDIA GPU, and this machine has none "
                          "(or lacks its driver's libnvidia-encode); use h264 or hevc")
    if name is None or name not in av.codecs_available:
        raise VidganError(f"unknown or unavailable codec {codec!r}; choose one of: "
                          f"{', '.join(usable_codecs())}")
    return name


def usable_codecs() -> list[str]:
    """The --codec values that work on this machine."""
    return [c for c in ("h264", "hevc", "h264_nvenc", "hevc_nvenc")
            if ENCODERS[c] in av.codecs_available and ("nvenc" not in c or nvenc_available())]


@functools.cache
def nvenc_available() -> bool:
    """Whether NVENC can run: NVIDIA's encoder library loads, the driver lists a GPU, and an
    encoder opens. PyAV's FFmpeg lists the NVENC encoders on any machine, and data-centre GPUs
    (H100, H200) have the driver's library but no encoder."""
    library = "nvEncodeAPI64.dll" if sys.platform == "win32" else "libnvidia-encode.so.1"
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if sys.platform.startswith("linux") and not (gpus.is_dir() and any(gpus.iterdir())):
        return False
    return _nvenc_opens()


def _nvenc_opens() -> bool:
    if "h264_nvenc" not in av.codecs_available:
        return False
    context = av.CodecContext.create("h264_nvenc", "w")
    context.width, context.height, context.pix_fmt = 256, 256, "yuv420p"
    context.time_base = Fraction(1, 25)
    try:
        context.open()
    except av.FFmpegError:
        return False
    return True


def check_quality(crf: int, preset: str) -> None:
    """--crf and --preset, checked before any encoder starts (x264 would clamp a crf of 999
    to 51 and print its own two lines for an unknown preset)."""
    lo, hi = CRF_RANGE
    if not lo <= crf <= hi:
        raise VidganError(f"--crf must be {lo}..{hi} (lower is better and bigger; 18 is visually "
                          f"lossless), not {crf}")
    if preset not in NVENC_PRESETS:
        raise VidganError(f"unknown --preset {preset!r}; choose one of: {', '.join(NVENC_PRESETS)}")


class VideoWriter:
    """Encodes RGB frames to `path` (yuv420p), optionally with the audio of another file.

    The file is written under a temporary name and renamed to `path` by `close()`; `abort()`
    (or leaving the `with` block on an exception) deletes it. Odd widths/heights are padded by
    one edge-replicated row/column, since yuv420p needs even sides; `width`/`height` are then
    the padded size.

    rate: nominal frames per second (a Fraction); time_base: unit of the pts given to `write`
    (default 1/rate). audio_from: a file whose first audio stream is copied, or transcoded to
    AAC when the container cannot hold its codec; audio_start/audio_end (seconds in that file)
    trim it, and a start shifts it to 0 like the video.
    """

    def __init__(self, path: str | Path, width: int, height: int, rate: Fraction,
                 time_base: Fraction | None = None, codec: str = "h264", crf: int = 18,
                 preset: str = "veryfast", audio_from: str | Path | None = None,
                 audio_start: float | None = None, audio_end: float | None = None):
        self.path = Path(path)
        self.tmp = partial_path(self.path, keep_suffix=True)  # PyAV picks the format by name
        self.rate = Fraction(rate)
        self.time_base = Fraction(time_base) if time_base else 1 / self.rate
        self.width, self.height = width + width % 2, height + height % 2
        self._pad = ((0, self.height - height), (0, self.width - width), (0, 0))
        self._frame_ticks = 1 / (self.rate * self.time_base)  # one frame at `rate`, in time_base
        self.count = 0
        self._last_pts: int | None = None
        self._durations: dict[int, int] = {}  # pts -> duration of the frames inside the encoder
        self._first_pts: int | None = None
        self._end = 0  # the end of the last frame shown, in time_base units
        self._first_dts: int | None = None
        self._held = None
        self.audio = None
        encoder = encoder_name(codec)
        check_quality(crf, preset)
        if max(self.width, self.height) > MAX_SIDE:
            raise VidganError(f"a {self.width}x{self.height} video is larger than the encoders "
                              f"take ({MAX_SIDE} px a side); use a smaller --output-height")
        self.container = _open_output(self.tmp, self.path)
        try:
            self.stream = _video_stream(self.container, self.path, encoder, self.width,
                                        self.height, self.rate, self.time_base, crf, preset)
            if audio_from is not None:
                self.audio = _open_audio(self.container, audio_from, audio_start, audio_end)
        except BaseException:
            self.abort()
            raise

    def write(self, frame: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame, shown at `pts` for `duration` (time_base units;
        None: the next frame at `rate`, for one frame)."""
        if pts is None:
            pts = round(self.count * self._frame_ticks)
        if self._last_pts is not None and pts <= self._last_pts:
            # encoders refuse repeated timestamps, which broken files have: one frame later
            pts = self._last_pts + max(1, round(self._frame_ticks))
        self._last_pts = pts
        if self._first_pts is None:
            self._first_pts = pts
        if self._pad[0][1] or self._pad[1][1]:
            frame = np.pad(frame, self._pad, mode="edge")
        # OpenCV's BT.601 conversion: swscale's result (luma within 1), faster and without the GIL
        yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
        vf = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
        vf.pts, vf.time_base = pts, self.time_base
        duration = duration or max(1, round(self._frame_ticks))
        self._durations[pts] = duration
        self._end = max(self._end, pts + duration)
        try:
            self._mux(self.stream.encode(vf))
            self.count += 1
            if self.audio is not None:
                self.audio.mux_until(float(pts * self.time_base))
        except OSError as exc:  # av.error.OSError too: a full disk while muxing
            raise write_error(exc, self.path) from None

    def close(self) -> Path:
        """Flush the encoder, finish the audio, mux the trailer, then rename to `path`."""
        if self.container is None:
            return self.path
        try:
            if self.count == 0:
                raise VidganError(f"no video frames to write to {self.path}")
            self._mux(self.stream.encode(None))
            self._mux_last()
            if self.audio is not None:
                self.audio.finish()
            self.container.close()
            self.container = None
            commit(self.tmp, self.path)  # a full disk can show only now, on filesystems that write late
        except OSError as exc:
            self.abort()
            raise write_error(exc, self.path) from None
        except BaseException:
            self.abort()
            raise
        return self.path

    def _mux(self, packets) -> None:
        # The encoders leave packet durations at 0 and the muxer would guess the last one. One
        # packet is held back, so that the last one's duration can be set by `_mux_last`.
        for packet in packets:
            packet.duration = self._durations.pop(packet.pts, 0)
            if self._first_dts is None:
                self._first_dts = packet.dts
            if self._held is not None:
                self.container.mux(self._held)
            self._held = packet

    def _mux_last(self) -> None:
        """The decode-order durations must add up to the display-order ones (first pts to the
        end of the last frame), or demuxers report a wrong length after B-frame reordering."""
        last = self._held
        if last.dts is not None and self._first_dts is not None:
            covered = last.dts - self._first_dts
            last.duration = max(1, self._end - self._first_pts - covered)
        self.container.mux(last)
        self._held = None

    def abort(self) -> None:
        """Stop writing and delete the temporary file; nothing appears at `path`. Safe to repeat."""
        if self.audio is not None:
            self.audio.input.close()
            self.audio = None
        if self.container is not None:
            try:
                self.container.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # a half-written file is deleted below anyway
            self.container = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _open_output(tmp: Path, path: Path):
    try:
        tmp.open("wb").close()  # FFmpeg opens the file only at the first frame: fail early
    except OSError as exc:
        raise VidganError(f"cannot write to {path.parent}: {exc.strerror}") from None
    try:
        return av.open(str(tmp), "w")
    except ValueError:
        tmp.unlink(missing_ok=True)
        raise VidganError(f"cannot tell the container format from {path.name!r}; "
                          "use .mp4, .mkv or .mov") from None


def _video_stream(container, path: Path, encoder: str, width: int, height: int, rate: Fraction,
                  time_base: Fraction, crf: int, preset: str):
    codec = av.Codec(encoder, "w").canonical_name
    if codec not in container.supported_codecs:
        raise VidganError(f"a {path.suffix} file cannot hold {codec} video; "
                          "use .mp4, .mkv or .mov, or another --codec")
    stream = container.add_stream(encoder, rate=rate, options=_encoder_options(encoder, crf, preset))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = stream.codec_context.time_base = time_base
    if codec == "hevc" and container.format.name in ("mp4", "mov"):
        stream.codec_tag = "hvc1"  # Apple players refuse HEVC tagged hev1
    try:
        stream.codec_context.open()
    except av.FFmpegError as exc:
        hint = "; NVENC needs an NVIDIA GPU and driver" if "nvenc" in encoder else ""
        raise VidganError(f"the {encoder} encoder could not start ({_reason(exc)}){hint}") from None
    return stream


def _encoder_options(encoder: str, crf: int, preset: str) -> dict[str, str]:
    if "nvenc" in encoder:
        return {"rc": "vbr", "cq": str(crf), "b": "0", "preset": NVENC_PRESETS.get(preset, preset)}
    options = {"crf": str(crf), "preset": preset}
    if encoder == "libx265":
        options["x265-params"] = "log-level=error"
    return options


def _accepts(container, codec: str) -> bool:
    """Whether the output container can hold `codec` audio as it is (a stream copy)."""
    if container.format.name == "mp4" and codec.startswith("pcm_"):
        return False  # FFmpeg can put PCM in .mp4 (ISO 23003-5) but most players cannot play it
    return codec in container.supported_codecs


def _open_audio(container, source, start: float | None, end: float | None) -> _Audio | None:
    try:
        inp = av.open(str(source))
    except av.FFmpegError as exc:
        warn(f"the audio of {source} cannot be read ({_reason(exc)}); writing video only")
        return None
    if not inp.streams.audio:
        inp.close()
        return None
    try:
        return _Audio(container, inp, start, end)
    except (av.FFmpegError, ValueError) as exc:
        inp.close()
        warn(f"the audio of {source} cannot be copied ({_reason(exc)}); writing video only")
        return None


def _open_aac(rate: int, layout) -> None:
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format = rate, layout, "fltp"
    ctx.open()


class _Audio:
    """The first audio stream of an input, copied into the output container (or transcoded to
    AAC), muxed up to the video's current time so the file stays interleaved."""

    def __init__(self, container, inp, start: float | None, end: float | None):
        self.container, self.input = container, inp
        src = inp.streams.audio[0]
        self.tb = src.time_base
        self.copy = _accepts(container, src.codec_context.codec.canonical_name)
        if self.copy:
            self.out = container.add_stream_from_template(src)
        else:
            rate = src.codec_context.sample_rate
            # the default layout for the channel count: AAC refuses unordered ones ("2 channels")
            layout = av.AudioLayout(f"{src.codec_context.layout.nb_channels}c")
            _open_aac(rate, layout)  # fail here, not when the container writes its header
            self.out = container.add_stream("aac", rate=rate, layout=layout)
        self.begin = round(start / self.tb) if start else None
        self.end = round(end / self.tb) if end is not None else None
        if self.begin:
            inp.seek(self.begin, stream=src)
        self.packets = inp.demux(src)
        self.pending = None
        self.done = False

    def mux_until(self, seconds: float) -> None:
        """Mux the audio that plays up to `seconds` of output time."""
        shift = self.begin or 0
        limit = seconds / self.tb + shift
        try:
            while not self.done:
                packet = self.pending or next(self.packets, None)
                self.pending = None
                if packet is None or packet.size == 0:  # the demuxer's last, empty packet
                    self._flush(packet, shift)
                    return
                if packet.pts is not None:
                    if packet.pts > limit:
                        self.pending = packet
                        return
                    if self.end is not None and packet.pts >= self.end:
                        self._flush(None, shift)
                        return
                    if self.begin is not None and packet.pts < self.begin:
                        continue
                self._emit(packet, shift)
        except (av.FFmpegError, ValueError, OSError) as exc:
            self.done = True
            warn(f"the audio stream is broken ({_reason(exc)}); the rest of the video has no sound")

    def finish(self) -> None:
        self.mux_until(math.inf)
        self.input.close()

    def _emit(self, packet, shift: int) -> None:
        if self.copy:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.out
            self.container.mux(packet)
            return
        for frame in packet.decode():
            if frame.pts is not None:
                frame.pts -= shift
            self.container.mux(self.out.encode(frame))

    def _flush(self, packet, shift: int) -> None:
        """End of the audio: drain the decoder (`packet`: the demuxer's empty last one) and encoder."""
        self.done = True
        if self.copy:
            return
        if packet is not None:
            self._emit(packet, shift)
        self.container.mux(self.out.encode(None))
