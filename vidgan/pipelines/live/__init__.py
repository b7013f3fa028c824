"""Live video stylized in real time: camera, screen or file in; window, recording or virtual
camera out. `run_live(...)` is the entry point (the `vidgan live` command)."""

import sys

# OpenCV loads before PyAV: PyAV's wheels bundle their own libxcb, and an OpenCV (Qt) window
# opened in a process that loaded PyAV first hangs (PyAV-Org/PyAV#978, #1050).
AV_BEFORE_CV2 = "av" in sys.modules and "cv2" not in sys.modules
import cv2  # noqa: F401

from vidgan.pipelines.live.pipeline import LiveStats, SourceLost, run_live
from vidgan.pipelines.live.sources import Source, open_source

__all__ = ["LiveStats", "Source", "SourceLost", "open_source", "run_live"]
