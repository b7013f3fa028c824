"""The `vidgan` command: parses options, builds the parts and calls one pipeline per command.

No logic lives here: each command builds one Stylizer (model file + backend + device +
precision + height + stabilizer) and hands it to its pipeline. Heavy imports (torch, cv2, av)
happen inside the commands so that `vidgan --help` and each command's help stay instant (the
lists of names in option help are written out; a test holds them to the registries). A
VidganError becomes `error: <message>` and exit code 2.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from vidgan.core.errors import VidganError

app = typer.Typer(
    help="Restyle photos, video files and live video as Van Gogh paintings, in real time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options that several commands share, declared once so that their names, defaults and help agree.
Model = Annotated[Path | None, typer.Option("--model", "-m", help="Model file (default: the bundled Van Gogh model).")]
Backend = Annotated[str, typer.Option("--backend", help="auto, torch, onnxruntime or tensorrt.")]
Device = Annotated[str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: CUDA when available).")]
Precision = Annotated[str, typer.Option("--precision", help="auto (fp16 on a GPU, fp32 on a CPU), fp32, fp16 or int8 (onnxruntime on a CPU; refused for a model whose int8 output falls below 40 dB PSNR of fp32).")]
SideBySide = Annotated[bool, typer.Option("--side-by-side", help="Write before | after.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
Stabilize = Annotated[bool, typer.Option("--stabilize", help="Reduce flicker (optical-flow blending).")]
StabilizeStrength = Annotated[float | None, typer.Option("--stabilize-strength", help="0..1 (default 0.7), with --stabilize.")]
Quality = Annotated[str | None, typer.Option(
    "--quality",
    help="Bundled model: fast (the real-time student, about 20x the frames/s of best on a CPU, "
         "finer strokes) or best (the full generator). Default: best; live and demo take fast on a CPU.")]
TrainDevice = Annotated[str | None, typer.Option("--device", help="cpu, cuda or auto.")]
Workers = Annotated[int | None, typer.Option("--workers", help="Data loading processes.")]
Seed = Annotated[int | None, typer.Option("--seed")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out.")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps.")]
Crop = Annotated[int | None, typer.Option("--crop")]
BatchSize = Annotated[int | None, typer.Option("--batch-size")]
Lr = Annotated[float | None, typer.Option("--lr")]


class Runner:
    """What the running commands share: the model a run takes and the Stylizer built from it."""

    def __init__(self, model: Path | None, quality: str | None, backend: str = "auto",
                 device: str | None = None, precision: str = "auto", realtime: bool = False):
        from vidgan.core.device import resolve_device
        from vidgan.core.modelfile import choose

        self.model = choose(model, quality, resolve_device(device), realtime)
        self.backend, self.device, self.precision = backend, device, precision

    def stylizer(self, height: int | None, shapes, stabilize: float | None = None):
        from vidgan.runtime.stylizer import Stylizer

        return Stylizer.build(self.model, self.backend, self.device, self.precision, height,
                              stabilize, shapes=shapes)


def _strength(stabilize: bool, strength: float | None) -> float | None:
    """The Stabilizer's strength for --stabilize/--stabilize-strength; None: off."""
    from vidgan.runtime.temporal import stabilize_strength_option

    strength = stabilize_strength_option(stabilize, strength)
    return strength if stabilize else None


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="The stylized clip; demo.png, before above after, goes beside it.")] = Path("demo.mp4"),
    camera: Annotated[str | None, typer.Option("--camera", help="Record this camera (index, device or URL) instead of the built-in clip.")] = None,
    model: Model = None,
    quality: Quality = None,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the clip or of the recording.")] = 4.0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the clip and the .png if they exist.")] = False,
) -> None:
    """The first thing to run: sample photographs (or your camera) stylized into demo.mp4 and demo.png."""
    from vidgan.pipelines import demo as pipeline

    runner = Runner(model, quality, realtime=True)
    pipeline.check_options(out, seconds, overwrite)
    stylizer = runner.stylizer(pipeline.HEIGHT, pipeline.clip_shapes())
    print(pipeline.format_result(pipeline.run_demo(out, stylizer, camera=camera, seconds=seconds,
                                                   overwrite=overwrite)))


@app.command()
def render(
    input: Annotated[Path, typer.Argument(help="The video to stylize.")],
    output: Annotated[Path, typer.Argument(help="The stylized video (.mp4, .mkv, .mov).")],
    model: Model = None,
    quality: Quality = None,
    backend: Backend = "auto",
    device: Device = None,
    precision: Precision = "auto",
    height: Annotated[int | None, typer.Option("--height", min=16, help="Processing height (default: the video's own).")] = None,
    output_height: Annotated[int | None, typer.Option("--output-height", min=16, help="Output height (default: the input's size).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Frames per model call.")] = 1,
    codec: Annotated[str, typer.Option("--codec", help="h264, hevc, h264_nvenc or hevc_nvenc.")] = "h264",
    crf: Annotated[int, typer.Option("--crf", help="Quality: lower is better and bigger (NVENC: cq).")] = 18,
    preset: Annotated[str, typer.Option("--preset", help="Encoder speed preset (x264 names).")] = "veryfast",
    start: Annotated[float | None, typer.Option("--start", help="Start at this second.")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Render this many seconds.")] = None,
    side_by_side: SideBySide = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")] = False,
    stabilize: Stabilize = False,
    stabilize_strength: StabilizeStrength = None,
) -> None:
    """Stylize every frame of a video; timestamps and audio are kept."""
    from vidgan.pipelines import render as pipeline

    runner = Runner(model, quality, backend, device, precision)
    pipeline.check_paths(input, output, overwrite)
    strength = _strength(stabilize, stabilize_strength)
    shapes = pipeline.planned_shapes(input, height, batch_size)
    pipeline.render_video(input, output, runner.stylizer(height, shapes, strength),
                          output_height=output_height, batch_size=batch_size, codec=codec, crf=crf,
                          preset=preset, start=start, duration=duration,
                          side_by_side=side_by_side, overwrite=overwrite)


@app.command()
def stylize(
    input: Annotated[Path, typer.Argument(help="An image, or a folder of images.")],
    output: Annotated[Path, typer.Argument(help="An image file, or a folder (same names as the input's).")],
    model: Model = None,
    quality: Quality = None,
    backend: Backend = "auto",
    device: Device = None,
    precision: Precision = "auto",
    height: Annotated[int | None, typer.Option("--height", min=16, help="Processing height (default: each image's own).")] = None,
    side_by_side: SideBySide = False,
    overwrite: Overwrite = False,
) -> None:
    """Stylize photos: one image or a folder of images (EXIF orientation honoured)."""
    from vidgan.pipelines import stylize as pipeline

    runner = Runner(model, quality, backend, device, precision)
    pipeline.plan(input, output, overwrite)  # every user error before the model loads
    stylizer = runner.stylizer(height, pipeline.planned_shapes(input, height))
    pipeline.stylize_images(input, output, stylizer, side_by_side=side_by_side,
                            overwrite=overwrite)


@app.command()
def live(
    camera: Annotated[str | None, typer.Option("--camera", help="Camera index, device path (/dev/video0) or stream URL (rtsp/http).")] = None,
    screen: Annotated[bool, typer.Option("--screen", help="Capture the screen (a game, a video call, ...).")] = False,
    monitor: Annotated[int | None, typer.Option("--monitor", help="Monitor for --screen: 1 = primary (default), 0 = all.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Capture X,Y,W,H of the monitor (pixels).")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="A video file played as if live, at its own frame rate.")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="With --input: play the file again and again.")] = False,
    capture_size: Annotated[str | None, typer.Option("--capture-size", help="WxH to ask of the camera, e.g. 1280x720.")] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Frame rate to ask of the camera; the most screen grabs per second (30).")] = None,
    model: Model = None,
    quality: Quality = None,
    backend: Backend = "auto",
    device: Device = None,
    precision: Precision = "auto",
    height: Annotated[int | None, typer.Option("--height", min=16, help="Processing height; the window keeps the source's size.")] = None,
    no_window: Annotated[bool, typer.Option("--no-window", help="Headless: a stats line every few seconds.")] = False,
    window_size: Annotated[str | None, typer.Option("--window-size", help="WxH of the window for one picture (default: the output's size).")] = None,
    no_overlay: Annotated[bool, typer.Option("--no-overlay", help="Start without the stats overlay (key i toggles it).")] = False,
    record: Annotated[Path | None, typer.Option("--record", help="Record the stylized stream to this file (key r toggles; later takes are named by their start time).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the --record file if it exists.")] = False,
    virtual_cam: Annotated[bool, typer.Option("--virtual-cam", help="Send the stream to a virtual camera (OBS, Zoom, ...).")] = False,
    serve: Annotated[str | None, typer.Option("--serve", help="[HOST:]PORT: a page and an MJPEG stream (/stream.mjpg) for OBS, VLC, browsers; HOST 127.0.0.1 unless given.")] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, help="Stop after this many frames shown.")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after this many seconds.")] = None,
    stabilize: Stabilize = False,
    stabilize_strength: StabilizeStrength = None,
) -> None:
    """Stylize a camera, the screen or a file live. Keys: q/Esc quit, s side by side,
    o original, f fullscreen, space pause, r record, i overlay, h the key list."""
    from vidgan.pipelines import live as pipeline

    runner = Runner(model, quality, backend, device, precision, realtime=True)
    window = not no_window
    pipeline.check_options(window, window_size, not no_overlay, max_frames, duration)
    strength = _strength(stabilize, stabilize_strength)
    source = pipeline.open_source(camera=camera, screen=screen, monitor=monitor, region=region,
                                  input=input, loop=loop, capture_size=capture_size, fps=fps)
    try:
        stylizer = runner.stylizer(height, pipeline.live_shapes(source, height), strength)
    except BaseException:
        source.close()
        raise
    pipeline.run_live(source, stylizer, window=window, window_size=window_size,
                      overlay=not no_overlay, record=record, overwrite=overwrite,
                      virtual_cam=virtual_cam, serve=serve, max_frames=max_frames,
                      duration=duration)


@app.command()
def train(
    recipe: Annotated[str | None, typer.Argument(help="A bundled recipe's name or a TOML file (default: vangogh-fast).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="CycleGAN layout: trainA = paintings, trainB = photos.")] = None,
    data_a: Annotated[Path | None, typer.Option("--data-a", help="Folder of paintings (instead of --data).")] = None,
    data_b: Annotated[Path | None, typer.Option("--data-b", help="Folder of photos (instead of --data).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, samples, logs, model file.")] = Path("runs/vangogh"),
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    decay_epochs: Annotated[int | None, typer.Option("--decay-epochs", help="Final epochs of linear lr decay.")] = None,
    max_steps: MaxSteps = None,
    crop: Annotated[int | None, typer.Option("--crop", help="Training crop size (images resized to crop*286/256 first).")] = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    gan_loss: Annotated[str | None, typer.Option("--gan-loss", help="lsgan or bce.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option("--checkpoint-every", help="Epochs between checkpoints.")] = None,
    device: TrainDevice = None,
    workers: Workers = None,
    seed: Seed = None,
    warm_start: Annotated[list[Path] | None, typer.Option("--warm-start", help="G then F model files to start from (give twice).")] = None,
    resume: Resume = False,
    export_only: Annotated[Path | None, typer.Option("--export-only", help="Only write the model files of this checkpoint.")] = None,
) -> None:
    """Train CycleGAN generators (photo <-> painting) and write the photo -> painting model file."""
    from vidgan.train import cyclegan, recipes

    if export_only:
        print(f"wrote {cyclegan.export_checkpoint(export_only)}")
        return
    if warm_start and len(warm_start) != 2:
        raise VidganError("--warm-start takes two model files: give it twice, G (photo->painting) then F")
    overrides = _given(data=data, data_a=data_a, data_b=data_b, out=out, epochs=epochs,
                       decay_epochs=decay_epochs, max_steps=max_steps, crop=crop,
                       batch_size=batch_size, lr=lr, gan_loss=gan_loss,
                       checkpoint_every=checkpoint_every, device=device, workers=workers,
                       seed=seed, warm_start=warm_start)
    if resume:
        cfg = cyclegan.resumed_config(out, overrides)
    else:
        cfg = recipes.load_config(cyclegan.TrainConfig, recipe, overrides)
    cyclegan.train(cfg, resume=resume)


@app.command()
def distill(
    recipe: Annotated[str | None, typer.Argument(help="A bundled recipe's name or a TOML file (default: vangogh-realtime).")] = None,
    teacher: Annotated[Path | None, typer.Option("--teacher", help="Photo -> painting model file to learn from (default: the bundled vangogh-fast).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="CycleGAN layout: photos in trainB, held-out photos in valB.")] = None,
    photos: Annotated[Path | None, typer.Option("--photos", help="A folder of photos (instead of --data).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, samples, logs, model file.")] = Path("runs/realtime"),
    steps: Annotated[int | None, typer.Option("--steps", help="Length of the learning-rate schedule.")] = None,
    max_steps: MaxSteps = None,
    crop: Crop = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    device: TrainDevice = None,
    workers: Workers = None,
    seed: Seed = None,
    resume: Resume = False,
) -> None:
    """Distil a small real-time student from a teacher model file (supervised, CPU-friendly)."""
    from vidgan.train import distill as distillation
    from vidgan.train import recipes

    overrides = _given(teacher=teacher, data=data, photos=photos, out=out, steps=steps,
                       max_steps=max_steps, crop=crop, batch_size=batch_size, lr=lr,
                       device=device, workers=workers, seed=seed)
    if resume:
        cfg = distillation.resumed_config(out, overrides)
    else:
        cfg = recipes.load_config(distillation.DistillConfig, recipe or "vangogh-realtime", overrides)
    distillation.distill(cfg, resume=resume, teacher=_teacher(cfg))


def _teacher(cfg):
    """The teacher's runner for distillation: its model file behind the fastest backend, fp32."""
    from vidgan.core.modelfile import resolve
    from vidgan.runtime.stylizer import Stylizer

    return Stylizer.build(resolve(cfg.teacher), device=cfg.device, precision="fp32")


def _given(**options) -> dict:
    """The options given (not None), paths as strings: a config's values."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        return [plain(v) for v in value] if isinstance(value, list) else value

    return {k: plain(v) for k, v in options.items() if v is not None}


@app.command()
def export(
    model: Model = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: the cache's engines/, see `vidgan info`).")] = None,
    photos: Annotated[Path | None, typer.Option("--photos", help="Folder of photos to verify on (default: built-in samples).")] = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="Stop at ONNX (with --fp16: also the FP16 ONNX); no GPU needed.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="FP16 ONNX and an FP16 TensorRT engine (InstanceNorm kept FP32).")] = False,
    profile: Annotated[str | None, typer.Option("--profile", help="Shape preset: default, 360p, 720p, 1080p.")] = None,
    min_shape: Annotated[str | None, typer.Option("--min", help="Smallest input HxW (default 256x256).")] = None,
    opt_shape: Annotated[str | None, typer.Option("--opt", help="Input HxW to tune for (default 720x1280).")] = None,
    max_shape: Annotated[str | None, typer.Option("--max", help="Largest input HxW (default 1920x1920: 1080p either way up).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Largest batch the engine takes.")] = 1,
    workspace: Annotated[float, typer.Option("--workspace", help="TensorRT builder workspace in GiB.")] = 4.0,
    opt_level: Annotated[int, typer.Option("--opt-level", help="TensorRT builder optimization level 0-5.")] = 3,
    overwrite: Overwrite = False,
) -> None:
    """ONNX -> FP16 ONNX -> TensorRT engine in the cache's engines/, each checked against PyTorch."""
    from vidgan.runtime.export_model import export_model

    export_model(model, out, onnx_only=onnx, fp16=fp16, preset=profile, min_shape=min_shape,
                 opt_shape=opt_shape, max_shape=max_shape, batch=batch, workspace_gib=workspace,
                 opt_level=opt_level, overwrite=overwrite, photos=photos)


@app.command("eval")
def eval_(
    model: Model = None,
    data: Annotated[Path | None, typer.Option("--data", help="Held-out images: valB/valA (or testB/testA) inside, or a folder of photos.")] = None,
    inverse: Annotated[Path | None, typer.Option("--inverse", help="F, painting -> photo (default: <model>-F.safetensors beside the model).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for grid.png and eval.json.")] = Path("runs/eval"),
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many photos and paintings.")] = None,
    video: Annotated[Path | None, typer.Option("--video", help="A clip: with --rendered, measure flicker instead.")] = None,
    rendered: Annotated[Path | None, typer.Option("--rendered", help="The stylized rendering of --video.")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Another rendering of --video to compare with.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace grid.png and eval.json in --out.")] = False,
) -> None:
    """Held-out cycle and identity L1 and a before/after grid; or a rendering's flicker (--video)."""
    if video or rendered:
        from vidgan.evaluation import flicker

        if video is None:
            raise VidganError("--rendered needs --video IN: the clip it is a rendering of")
        print(flicker.run_video_eval(video, rendered, baseline))
    elif data is None:
        raise VidganError("give --data DIR (held-out images) or --video IN --rendered OUT")
    else:
        from vidgan.evaluation import heldout

        print(heldout.run_model_eval(model, data, inverse=inverse, out=out, limit=limit,
                                     overwrite=overwrite))


@app.command()
def bench(
    what: Annotated[str, typer.Argument(help="model, render, live or train.")] = "model",
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model file (model: default fresh generators).")] = None,
    backend: Annotated[list[str] | None, typer.Option("--backend", "-b", help="Repeatable; `model` takes auto, torch, onnxruntime, tensorrt, torch-fp32, torch-fp16, torch-compiled, torch-cudagraphs, torch-compiled-cudagraphs, onnxruntime-fp32 or onnxruntime-int8.")] = None,
    device: Device = None,
    sizes: Annotated[str | None, typer.Option("--sizes", help="WxH list, e.g. 256x256,640x360 (model).")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="Time per measurement.")] = None,
    generator: Annotated[list[str] | None, typer.Option("--generator", help="Repeatable (model, train): fast, resnet, unet or realtime.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Frames per call (model).")] = None,
    height: Annotated[list[int] | None, typer.Option("--height", help="Repeatable processing height (live).")] = None,
    clip: Annotated[Path | None, typer.Option("--clip", help="Video file to play (render, live).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps (train).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the result JSON (default: the cache's results/, see `vidgan info`).")] = None,
) -> None:
    """Benchmarks: a table on screen and JSON in --out (the cache's results/ by default)."""
    from vidgan.tools.bench import run as benchmarks

    benchmarks.run_bench(
        what, model=model, backends=backend, device=device, seconds=seconds, batch=batch,
        sizes=benchmarks.parse_sizes(sizes) if sizes else None, generators=generator,
        heights=height, clip=clip, steps=steps, out=out,
    )


@app.command()
def info(model: Model = None) -> None:
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
    except Exception as exc:
        stop = _interrupt_behind(exc)
        if stop is not None:
            _exit(getattr(stop, "message", "interrupted"), 128 + _signalled)
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:  # a write no command expected to fail
            _exit(f"error: {no_room(exc, exc.filename or 'a file').message}", 2)
        raise
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


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt an exception was raised while handling, if any: a signal lands between any
    two bytecodes, and library code unwinding from it (torch's mode stack, for one) can fail in
    turn. That failure is the interruption's, not a bug to show as a traceback."""
    while exc is not None and not isinstance(exc, KeyboardInterrupt):
        exc = exc.__context__
    return exc


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
