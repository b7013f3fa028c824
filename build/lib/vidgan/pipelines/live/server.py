"""`vidgan live --serve`: the stylized stream over local HTTP, for OBS, VLC, ffplay, browsers.

    GET /             a page showing the stream and its stats
    GET /stream.mjpg  the stream as multipart MJPEG (multipart/x-mixed-replace): what an OBS
                      Media or Browser source, VLC (Open Network Stream) or ffplay open
    GET /frame.jpg    the newest frame, one JPEG
    GET /stats.json   the run's counters, fps and latency

Every viewer has its own thread (ThreadingHTTPServer) and takes the newest frame from one
shared slot whenever it is ready to send, so a slow or stalled viewer only misses frames:
nothing queues for it but the one frame it is sending, and neither the pipeline nor the other
viewers wait for it. Each frame is JPEG-encoded at most once, by the first viewer that wants
it, and not at all while nobody watches. A viewer that closes only ends its own thread.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import cv2
import numpy as np

from vidgan.core.errors import VidganError

DEFAULT_HOST = "127.0.0.1"  # this machine only, unless told otherwise
BOUNDARY = "vidganframe"
JPEG_QUALITY = 85
MAX_VIEWERS = 16  # one thread each; more are refused (503)
SEND_BUFFER = 256 * 1024  # bytes the kernel holds for one viewer: a slow one lags a few frames
STALL_TIMEOUT = 10.0  # seconds a viewer may take to accept data before it is dropped


def parse_address(text: str) -> tuple[str, int]:
    """"8080" -> ("127.0.0.1", 8080); "0.0.0.0:8080" -> ("0.0.0.0", 8080). Port 0: any free."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535 or ":" in host:
        raise VidganError(f"--serve {text!r} is not [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080 "
                          "(an IPv4 address or a host name)")
    return host or DEFAULT_HOST, int(port)


class LatestJpeg:
    """The newest published frame, JPEG-encoded at most once, for any number of readers."""

    def __init__(self, quality: int = JPEG_QUALITY):
        self.quality = quality
        self.published = self.encoded = 0
        self.closed = False
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._encode_lock = threading.Lock()
        self._jpeg: tuple[int, bytes] = (0, b"")  # (frame number, its JPEG)

    def publish(self, image: np.ndarray) -> None:
        """Offer a frame (RGB uint8 (H, W, 3), not changed afterwards). Never waits on a
        reader: it only swaps a reference."""
        with self._cond:
            self._image = image
            self.published += 1
            self._cond.notify_all()

    def newer_than(self, seen: int, timeout: float) -> tuple[int, bytes] | None:
        """(number, JPEG) of the newest frame if it is newer than frame `seen`, waiting up to
        `timeout` s for one; None if none came or the slot is closed."""
        with self._cond:
            self._cond.wait_for(lambda: self.published > seen or self.closed, timeout)
            if self.closed or self.published <= seen:
                return None
            image, number = self._image, self.published
        with self._encode_lock:  # outside the condition: publish() never waits for an encode
            if self._jpeg[0] < number:
                self._jpeg = (number, self._encode(image))
            return self._jpeg

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _encode(self, image: np.ndarray) -> bytes:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a frame as JPEG")
        self.encoded += 1
        return data.tobytes()


class StreamServer:
    """A local HTTP server, in background threads, serving the frames given to `publish`.

    address: "[HOST:]PORT" (see parse_address). It listens from construction on; `url` is
    the page's address (with the real port when PORT was 0). Call `close()` at the end.
    """

    def __init__(self, address: str, quality: int = JPEG_QUALITY):
        host, port = parse_address(address)
        self.frames = LatestJpeg(quality)
        try:
            self._httpd = _HTTPServer((host, port), _Handler)
        except OSError as exc:
            raise VidganError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); "
                              "choose another port with --serve") from None
        self._httpd.frames = self.frames
        shown = "127.0.0.1" if host == "0.0.0.0" else host
        self.url = f"http://{shown}:{self._httpd.server_port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.1,),
                                        name="live-serve", daemon=True)
        self._thread.start()

    @property
    def viewers(self) -> int:
        return len(self._httpd.streaming)

    def publish(self, image: np.ndarray) -> None:
        self.frames.publish(image)

    def set_stats(self, stats: dict) -> None:
        """What /stats.json says from now on (a new dict each time: readers never see it
        half-updated)."""
        self._httpd.stats = stats

    def close(self) -> None:
        """Stop serving: end every viewer's stream and free the port."""
        self.frames.close()
        self._httpd.shutdown()
        self._httpd.drop_connections()
        self._httpd.server_close()
        self._thread.join()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a viewer's thread never keeps the process alive
    block_on_close = False

    def __init__(self, *args):
        super().__init__(*args)
        self.frames: LatestJpeg | None = None
        self.stats: dict = {}
        self.streaming: set = set()  # the handlers sending /stream.mjpg now
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()

    def drop_connections(self) -> None:
        """Shut every open connection: a viewer blocked in a send gets an error and ends."""
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = STALL_TIMEOUT  # on every receive and send of this connection
    disable_nagle_algorithm = True  # a frame goes out as soon as it is written

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # the viewer went away

    def do_GET(self) -> None:
        routes = {"/": self._page, "/index.html": self._page, "/stream.mjpg": self._stream,
                  "/frame.jpg": self._frame, "/stats.json": self._stats}
        route = routes.get(urlsplit(self.path).path)
        try:
            if route is None:
                self.send_error(404, "not here: try / or /stream.mjpg")
            else:
                route()
        except OSError:
            pass  # the viewer closed the connection, stalled too long, or the run ended

    def log_message(self, format, *args) -> None:
        pass  # no line per request on the live run's terminal

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _page(self) -> None:
        self._send(PAGE.encode(), "text/html; charset=utf-8")

    def _stats(self) -> None:
        stats = {**self.server.stats, "viewers": len(self.server.streaming)}
        self._send(json.dumps(stats).encode(), "application/json")

    def _frame(self) -> None:
        newest = self.server.frames.newer_than(0, timeout=STALL_TIMEOUT)
        if newest is None:
            self.send_error(503, "no frame yet")
            return
        self._send(newest[1], "image/jpeg")

    def _stream(self) -> None:
        with self.server.lock:
            full = len(self.server.streaming) >= MAX_VIEWERS
            if not full:
                self.server.streaming.add(self)
        if full:
            self.send_error(503, f"{MAX_VIEWERS} viewers already")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self._send_frames()
        finally:
            with self.server.lock:
                self.server.streaming.discard(self)

    def _send_frames(self) -> None:
        """Each part is the newest frame when the previous one has gone out: a slow viewer
        skips frames instead of falling behind."""
        frames, seen = self.server.frames, 0
        while not frames.closed:
            newest = frames.newer_than(seen, timeout=1.0)
            if newest is None:
                continue  # paused, or closing: look again
            seen, jpeg = newest
            head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n").encode()
            self.wfile.write(head + jpeg + b"\r\n")


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vidgan live</title>
<style>
  html, body { margin: 0; height: 100%; background: #111; color: #ddd;
               font: 14px/1.4 system-ui, sans-serif; }
  body { display: flex; flex-direction: column; }
  #stream { flex: 1; min-height: 0; width: 100%; object-fit: contain; }
  #stats { padding: 6px 10px; font-family: ui-monospace, monospace; }
  a { color: #9cf; }
</style>
</head>
<body>
<img id="stream" src="/stream.mjpg" alt="the stylized stream">
<div id="stats">waiting for the first frame ...</div>
<div id="links" style="padding: 0 10px 8px">
  the stream alone, for OBS (Media or Browser source), VLC or ffplay:
  <a href="/stream.mjpg">/stream.mjpg</a>
</div>
<script>
  const stats = document.getElementById("stats");
  const show = (v, unit) => v === null || v === undefined ? "-" : `${v}${unit}`;
  async function update() {
    try {
      const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
      if (!("shown" in s)) return;
      stats.textContent = `${show(s.fps, " fps")} | latency ${show(s.latency_ms, " ms")} | `
        + `${s.captured} captured, ${s.shown} shown, ${s.dropped} dropped | `
        + `${s.backend} at ${s.processing} | ${s.source} ${s.size}`
        + (s.recording ? " | REC" : "") + (s.paused ? " | PAUSED" : "")
        + ` | ${s.viewers} watching`;
    } catch (e) {
      stats.textContent = "the live run has stopped";
    }
  }
  update();
  setInterval(update, 1000);
</script>
</body>
</html>
"""
