"""The `vidgan` command: parses options and calls one library function per command.

No logic lives here. Heavy imports (torch, cv2, av) happen inside the commands so that
`vidgan --help` stays instant. A VidganError becomes `error: <message>` and exit code 2.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from vidgan.core.errors import VidganError

app = typer.Typer(
    help="Restyle photos, video files and live video as Van Gogh paintings, in real time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options that several commands share, declared once so that their names, defaults and help agree.
ModelOpt = typer.Option(None, "--model", "-m", help="Model file (default: the bundled Van Gogh model).")
BackendOpt = typer.Option("auto", "--backend", help="auto, torch, onnxruntime or tensorrt.")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when available).")
PrecisionOpt = typer.Option("auto", "--precision", help="fp32, fp16 or auto.")
SideBySideOpt = typer.Option(False, "--side-by-side", help="Write before | after.")
OverwriteOpt = typer.Option(False, "--overwrite", help="Replace existing outputs.")
StabilizeOpt = typer.Option(False, "--stabilize", help="Reduce flicker (optical-flow blending).")
StabilizeStrengthOpt = typer.Option(None, "--stabilize-strength", help="0..1 (default 0.7), with --stabilize.")
QualityOpt = typer.Option(
    None, "--quality",
    help="Bundled model: fast (the real-time student, about 18x the frames/s of best on a CPU, "
         "softer strokes) or best (the full generator). Default: best; live and demo take fast on a CPU.")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo.mp4"), "--out", help="The stylized clip; demo.png, before above after, goes beside it."),
    camera: str | None = typer.Option(None, "--camera", help="Record this camera (index, device or URL) instead of the built-in clip."),
    model: Path | None = ModelOpt,
    quality: str | None = QualityOpt,
    seconds: float = typer.Option(4.0, "--seconds", help="Length of the clip or of the recording."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the clip and the .png if they exist."),
) -> None:
    """The first thing to run: sample photographs (or your camera) stylized into demo.mp4 and demo.png."""
    from vidgan.pipelines.demo import format_result, run_demo

    model = _model(model, quality, None, realtime=True)
    print(format_result(run_demo(out, model=model, camera=camera, seconds=seconds,
                                 overwrite=overwrite)))


@app.command()
def render(
    input: Path = typer.Argument(..., help="The video to stylize."),
    output: Path = typer.Argument(..., help="The stylized video (.mp4, .mkv, .mov)."),
    model: Path | None = ModelOpt,
    quality: str | None = QualityOpt,
    backend: str = BackendOpt,
    device: str | None = DeviceOpt,
    precision: str = PrecisionOpt,
    height: int | None = typer.Option(None, "--height", min=16, help="Processing height (default: the video's own)."),
    output_height: int | None = typer.Option(None, "--output-height", min=16, help="Output height (default: the input's size)."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Frames per model call."),
    codec: str = typer.Option("h264", "--codec", help="h264, hevc, h264_nvenc or hevc_nvenc."),
    crf: int = typer.Option(18, "--crf", help="Quality: lower is better and bigger (NVENC: cq)."),
    preset: str = typer.Option("veryfast", "--preset", help="Encoder speed preset (x264 names)."),
    start: float | None = typer.Option(None, "--start", help="Start at this second."),
    duration: float | None = typer.Option(None, "--duration", help="Render this many seconds."),
    side_by_side: bool = SideBySideOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    stabilize: bool = StabilizeOpt,
    stabilize_strength: float | None = StabilizeStrengthOpt,
) -> None:
    """Stylize every frame of a video; timestamps and audio are kept."""
    from vidgan.pipelines.render import render_video

    model = _model(model, quality, device, realtime=False)
    render_video(input, output, model=model, backend=backend, device=device, precision=precision,
                 height=height, output_height=output_height, batch_size=batch_size, codec=codec,
                 crf=crf, preset=preset, start=start, duration=duration, side_by_side=side_by_side,
                 overwrite=overwrite, stabilize=stabilize, stabilize_strength=stabilize_strength)


@app.command()
def stylize(
    input: Path = typer.Argument(..., help="An image, or a folder of images."),
    output: Path = typer.Argument(..., help="An image file, or a folder (same names as the input's)."),
    model: Path | None = ModelOpt,
    quality: str | None = QualityOpt,
    backend: str = BackendOpt,
    device: str | None = DeviceOpt,
    precision: str = PrecisionOpt,
    height: int | None = typer.Option(None, "--height", min=16, help="Processing height (default: each image's own)."),
    side_by_side: bool = SideBySideOpt,
    overwrite: bool = OverwriteOpt,
) -> None:
    """Stylize photos: one image or a folder of images (EXIF orientation honoured)."""
    from vidgan.pipelines.stylize import stylize_images

    model = _model(model, quality, device, realtime=False)
    stylize_images(input, output, model=model, backend=backend, device=device, precision=precision,
                   height=height, side_by_side=side_by_side, overwrite=overwrite)


@app.command()
def live(
    camera: str | None = typer.Option(None, "--camera", help="Camera index, device path (/dev/video0) or stream URL (rtsp/http)."),
    screen: bool = typer.Option(False, "--screen", help="Capture the screen (a game, a video call, ...)."),
    monitor: int | None = typer.Option(None, "--monitor", help="Monitor for --screen: 1 = primary (default), 0 = all."),
    region: str | None = typer.Option(None, "--region", help="Capture X,Y,W,H of the monitor (pixels)."),
    input: Path | None = typer.Option(None, "--input", help="A video file played as if live, at its own frame rate."),
    loop: bool = typer.Option(False, "--loop", help="With --input: play the file again and again."),
    capture_size: str | None = typer.Option(None, "--capture-size", help="WxH to ask of the camera, e.g. 1280x720."),
    fps: float | None = typer.Option(None, "--fps", help="Frame rate to ask of the camera; the most screen grabs per second (30)."),
    model: Path | None = ModelOpt,
    quality: str | None = QualityOpt,
    backend: str = BackendOpt,
    device: str | None = DeviceOpt,
    precision: str = PrecisionOpt,
    height: int | None = typer.Option(None, "--height", min=16, help="Processing height; the window keeps the source's size."),
    no_window: bool = typer.Option(False, "--no-window", help="Headless: a stats line every few seconds."),
    window_size: str | None = typer.Option(None, "--window-size", help="WxH of the window for one picture (default: the output's size)."),
    no_overlay: bool = typer.Option(False, "--no-overlay", help="Start without the stats overlay (key i toggles it)."),
    record: Path | None = typer.Option(None, "--record", help="Record the stylized stream to this file (key r toggles; later takes are named by their start time)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --record file if it exists."),
    virtual_cam: bool = typer.Option(False, "--virtual-cam", help="Send the stream to a virtual camera (OBS, Zoom, ...)."),
    serve: str | None = typer.Option(None, "--serve", help="[HOST:]PORT: a page and an MJPEG stream (/stream.mjpg) for OBS, VLC, browsers; HOST 127.0.0.1 unless given."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames shown."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    stabilize: bool = StabilizeOpt,
    stabilize_strength: float | None = StabilizeStrengthOpt,
) -> None:
    """Stylize a camera, the screen or a file live. Keys: q/Esc quit, s side by side,
    o original, f fullscreen, space pause, r record, i overlay, h the key list."""
    from vidgan.pipelines.live import run_live
    from vidgan.runtime.temporal import stabilize_strength_option

    model = _model(model, quality, device, realtime=True)
    run_live(camera=camera, screen=screen, monitor=monitor, region=region, input=input,
             loop=loop, capture_size=capture_size, fps=fps, model=model, backend=backend,
             device=device, precision=precision, height=height, window=not no_window,
             window_size=window_size, overlay=not no_overlay, record=record,
             overwrite=overwrite, virtual_cam=virtual_cam, serve=serve, max_frames=max_frames,
             duration=duration, stabilize=stabilize,
             stabilize_strength=stabilize_strength_option(stabilize, stabilize_strength))


@app.command()
def train(
    recipe: str | None = typer.Argument(None, help="A bundled recipe's name or a TOML file (default: vangogh-fast)."),
    data: Path | None = typer.Option(None, "--data", help="CycleGAN layout: trainA = paintings, trainB = photos."),
    data_a: Path | None = typer.Option(None, "--data-a", help="Folder of paintings (instead of --data)."),
    data_b: Path | None = typer.Option(None, "--data-b", help="Folder of photos (instead of --data)."),
    out: Path = typer.Option(Path("runs/vangogh"), "--out", help="Run folder: checkpoints, samples, logs, model file."),
    epochs: int | None = typer.Option(None, "--epochs"),
    decay_epochs: int | None = typer.Option(None, "--decay-epochs", help="Final epochs of linear lr decay."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    crop: int | None = typer.Option(None, "--crop", help="Training crop size (images resized to crop*286/256 first)."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr"),
    gan_loss: str | None = typer.Option(None, "--gan-loss", help="lsgan or bce."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Epochs between checkpoints."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or auto."),
    workers: int | None = typer.Option(None, "--workers", help="Data loading processes."),
    seed: int | None = typer.Option(None, "--seed"),
    warm_start: list[Path] | None = typer.Option(None, "--warm-start", help="G then F model files to start from (give twice)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    export_only: Path | None = typer.Option(None, "--export-only", help="Only write the model files of this checkpoint."),
) -> None:
    """Train CycleGAN generators (photo <-> painting) and write the photo -> painting model file."""
    from vidgan.train import recipes
    from vidgan.train import cyclegan as training

    if export_only:
        path = training.export_checkpoint(export_only)
        print(f"wrote {path}")
        return
    if warm_start and len(warm_start) != 2:
        raise VidganError("--warm-start takes two model files: give it twice, G (photo->painting) then F")
    overrides = {
        "data": _str(data), "data_a": _str(data_a), "data_b": _str(data_b), "out": str(out),
        "epochs": epochs, "decay_epochs": decay_epochs, "max_steps": max_steps, "crop": crop,
        "batch_size": batch_size, "lr": lr, "gan_loss": gan_loss,
        "checkpoint_every": checkpoint_every, "device": device, "workers": workers, "seed": seed,
        "warm_start": [str(p) for p in warm_start] if warm_start else None,
    }
    if resume:
        cfg = training.resumed_config(out, overrides)
    else:
        cfg = recipes.load_config(training.TrainConfig, recipe, overrides)
    training.train(cfg, resume=resume)


@app.command()
def distill(
    recipe: str | None = typer.Argument(None, help="A bundled recipe's name or a TOML file (default: vangogh-realtime)."),
    teacher: Path | None = typer.Option(None, "--teacher", help="Photo -> painting model file to learn from (default: the bundled vangogh-fast)."),
    data: Path | None = typer.Option(None, "--data", help="CycleGAN layout: photos in trainB, held-out photos in valB."),
    photos: Path | None = typer.Option(None, "--photos", help="A folder of photos (instead of --data)."),
    out: Path = typer.Option(Path("runs/realtime"), "--out", help="Run folder: checkpoints, samples, logs, model file."),
    steps: int | None = typer.Option(None, "--steps", help="Length of the learning-rate schedule."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    crop: int | None = typer.Option(None, "--crop"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr"),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or auto."),
    workers: int | None = typer.Option(None, "--workers", help="Data loading processes."),
    seed: int | None = typer.Option(None, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
) -> None:
    """Distil a small real-time student from a teacher model file (supervised, CPU-friendly)."""
    from vidgan.train import distill as distillation
    from vidgan.train import recipes

    overrides = {
        "teacher": _str(teacher), "data": _str(data), "photos": _str(photos), "out": str(out),
        "steps": steps, "max_steps": max_steps, "crop": crop, "batch_size": batch_size, "lr": lr,
        "device": device, "workers": workers, "seed": seed,
    }
    if resume:
        cfg = distillation.resumed_config(out, overrides)
    else:
        cfg = recipes.load_config(distillation.DistillConfig, recipe or "vangogh-realtime", overrides)
    distillation.distill(cfg, resume=resume)


def _model(model: Path | None, quality: str | None, device: str | None, realtime: bool) -> Path:
    """The model file a command runs (see modelfile.choose)."""
    from vidgan.core.device import resolve_device
    from vidgan.core.modelfile import choose

    return choose(model, quality, resolve_device(device), realtime)


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


@app.command()
def export(
    model: Path | None = ModelOpt,
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: the cache's engines/, see `vidgan info`)."),
    photos: Path | None = typer.Option(None, "--photos", help="Folder of JPEG/PNG photos to verify on (default: built-in samples)."),
    onnx: bool = typer.Option(False, "--onnx", help="Stop at ONNX (with --fp16: also the FP16 ONNX); no GPU needed."),
    fp16: bool = typer.Option(False, "--fp16", help="FP16 ONNX and an FP16 TensorRT engine (InstanceNorm kept FP32)."),
    profile: str | None = typer.Option(None, "--profile", help="Shape preset: default, 360p, 720p, 1080p."),
    min_shape: str | None = typer.Option(None, "--min", help="Smallest input HxW (default 256x256)."),
    opt_shape: str | None = typer.Option(None, "--opt", help="Input HxW to tune for (default 720x1280)."),
    max_shape: str | None = typer.Option(None, "--max", help="Largest input HxW (default 1920x1920: 1080p either way up)."),
    batch: int = typer.Option(1, "--batch", help="Largest batch the engine takes."),
    workspace: float = typer.Option(4.0, "--workspace", help="TensorRT builder workspace in GiB."),
    opt_level: int = typer.Option(3, "--opt-level", help="TensorRT builder optimization level 0-5."),
    overwrite: bool = OverwriteOpt,
) -> None:
    """ONNX -> FP16 ONNX -> TensorRT engine in the cache's engines/, each checked against PyTorch."""
    from vidgan.runtime.export_model import export_model

    export_model(model, out, onnx_only=onnx, fp16=fp16, preset=profile, min_shape=min_shape,
                 opt_shape=opt_shape, max_shape=max_shape, batch=batch, workspace_gib=workspace,
                 opt_level=opt_level, overwrite=overwrite, photos=photos)


@app.command("eval")
def eval_(
    model: Path | None = ModelOpt,
    data: Path | None = typer.Option(None, "--data", help="Held-out images: valB/valA (or testB/testA) inside, or a folder of photos."),
    inverse: Path | None = typer.Option(None, "--inverse", help="F, painting -> photo (default: <model>-F.safetensors beside the model)."),
    out: Path = typer.Option(Path("runs/eval"), "--out", help="Folder for grid.png and eval.json."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many photos and paintings."),
    video: Path | None = typer.Option(None, "--video", help="A clip: with --rendered, measure flicker instead."),
    rendered: Path | None = typer.Option(None, "--rendered", help="The stylized rendering of --video."),
    baseline: Path | None = typer.Option(None, "--baseline", help="Another rendering of --video to compare with."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace grid.png and eval.json in --out."),
) -> None:
    """Held-out cycle and identity L1 and a before/after grid; or a rendering's flicker (--video)."""
    from vidgan.evaluation import evaluate

    if video or rendered:
        if video is None:
            raise VidganError("--rendered needs --video IN: the clip it is a rendering of")
        print(evaluate.run_video_eval(video, rendered, baseline))
    elif data is None:
        raise VidganError("give --data DIR (held-out images) or --video IN --rendered OUT")
    else:
        print(evaluate.run_model_eval(model, data, inverse=inverse, out=out, limit=limit,
                                      overwrite=overwrite))


@app.command()
def bench(
    what: str = typer.Argument("model", help="model, render, live or train."),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Model file (model: default fresh generators)."),
    backend: list[str] | None = typer.Option(
        None, "--backend", "-b",
        help="Repeatable; `model` also takes torch-fp16, torch-compiled, torch-cudagraphs."),
    device: str | None = DeviceOpt,
    sizes: str | None = typer.Option(
        None, "--sizes", help="WxH list, e.g. 256x256,640x360 (model)."),
    seconds: float | None = typer.Option(None, "--seconds", help="Time per measurement."),
    generator: list[str] | None = typer.Option(
        None, "--generator", help="Repeatable (model, train): fast, resnet, unet, realtime."),
    batch: int | None = typer.Option(None, "--batch", help="Frames per call (model)."),
    height: list[int] | None = typer.Option(
        None, "--height", help="Repeatable processing height (live)."),
    clip: Path | None = typer.Option(None, "--clip", help="Video file to play (render, live)."),
    steps: int | None = typer.Option(None, "--steps", help="Training steps (train)."),
) -> None:
    """Benchmarks: a table on screen and JSON in benchmarks/results/."""
    from vidgan.tools import bench as benchmarks

    benchmarks.run_bench(
        what, model=model, backends=backend, device=device, seconds=seconds, batch=batch,
        sizes=benchmarks.parse_sizes(sizes) if sizes else None, generators=generator,
        heights=height, clip=clip, steps=steps,
    )


@app.command()
def info(model: Path | None = ModelOpt) -> None:
    """Versions, GPU, codecs and backends; with --model, the model's size and GFLOPs."""
    from vidgan.tools import info as sysinfo

    sysinfo.print_report(model)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """The `vidgan` script: every failure ends in one line on stderr and a non-zero exit."""
    import warnings

    from vidgan.core.errors import NO_ROOM, no_room

    warnings.formatwarning = _one_line_warning
    previous = _stop_on_signals()
    try:
        _invoke(sys.argv[1:])
    except VidganError as exc:
        _exit(f"error: {exc.message}", exc.exit_code)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP; commands say what they kept
        _exit(getattr(exc, "message", "interrupted"), 128 + _signalled)
    except OSError as exc:  # a write that no command expected to fail for want of space
        if exc.errno not in NO_ROOM:
            raise
        _exit(f"error: {no_room(exc, exc.filename or 'a file').message}", 2)
    finally:  # main() called from Python (tests, a host program) leaves the handlers as they were
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _invoke(args: list[str]) -> None:
    """Run the command line through Typer's click command, but let KeyboardInterrupt through
    (Typer's own main turns it into a silent exit 130) and make usage errors one line."""
    import typer
    import typer.main

    command = typer.main.get_command(app)
    try:
        with command.make_context("vidgan", list(args)) as ctx:
            command.invoke(ctx)
    except typer.Exit as exc:  # --help
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # click's usage errors: a bad value, option or command
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `vidgan`: the help
            exc.show()
            sys.exit(exc.exit_code)
        message = " ".join(exc.format_message().split())
        where = getattr(getattr(exc, "ctx", None), "command_path", "vidgan")
        raise VidganError(f"{message} (see `{where} --help`)") from None


_signalled = signal.SIGINT  # the signal that stopped the command; its exit code is 128 + it


def _stop_on_signals() -> dict:
    """SIGTERM (`kill`, `docker stop`) and SIGHUP (a closed terminal) do what Ctrl-C does, so
    that each command's Ctrl-C handling (what was kept, nothing half-written) covers them too:
    they call the SIGINT handler of the moment (live installs one that stops the run cleanly),
    or raise KeyboardInterrupt where Ctrl-C is default or ignored (`nohup`, `&`). Returns the
    handlers it replaced."""

    def interrupt(signum, frame):
        global _signalled
        _signalled = signum
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not signal.default_int_handler:
            return handler(signal.SIGINT, frame)
        raise KeyboardInterrupt

    signals = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    return {sig: signal.signal(sig, interrupt) for sig in signals}


def _exit(line: str, code: int) -> None:
    print(line, file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
