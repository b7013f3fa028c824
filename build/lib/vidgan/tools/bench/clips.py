"""Generated clips with moving content (and a tone), so that benchmarks need no data set."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidgan.runtime.video import VideoWriter


def live_clip() -> Path:
    """A 10 s 1280x720 20 fps clip with moving content, in a temporary folder."""

    path = Path(tempfile.mkdtemp(prefix="vidgan-bench-")) / "live-720p.mp4"
    yy, xx = np.mgrid[0:720, 0:1280]
    base = np.stack([xx * 255 // 1280, yy * 255 // 720, np.full_like(xx, 96)], -1).astype(np.uint8)
    with VideoWriter(path, 1280, 720, Fraction(20)) as out:
        for i in range(200):
            frame = base.copy()
            x = 40 + 5 * i
            frame[200:360, x:x + 160] = (250, 240, 60)
            out.write(frame)
    return path


# --- vidgan bench model ------------------------------------------------------------------------


def synthetic_clip(path: Path, seconds: float, width: int = 640, height: int = 360,
                    fps: int = 30) -> Path:
    """Moving content with a 440 Hz AAC tone, so that the audio path is measured too."""

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 96)], -1).astype(np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        a = out.add_stream("aac", rate=48000, layout="mono")
        for i in range(round(seconds * fps)):
            frame = base.copy()
            x = (5 * i) % (width - 64)
            frame[100:164, x:x + 64] = (250, 240, 60)
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode(None))
        t = np.arange(round(seconds * 48000)) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, i:i + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, i
            out.mux(a.encode(chunk))
        out.mux(a.encode(None))
    return path
