"""Live video stylized in real time: camera, screen or file in; window, recording or virtual
camera out. `open_source(...)` opens a source, `run_live(source, stylizer, ...)` runs it (the
`vidgan live` command)."""

# sinks first: it notes whether PyAV was loaded before OpenCV, before anything loads either
from vidgan.pipelines.live import sinks  # noqa: F401, I001
from vidgan.pipelines.live.pipeline import LiveStats, SourceLost, check_options, live_shapes, run_live
from vidgan.pipelines.live.sources import SOURCES, Source, open_source

__all__ = ["SOURCES", "LiveStats", "Source", "SourceLost", "check_options", "live_shapes",
           "open_source", "run_live"]
