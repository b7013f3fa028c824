"""The `vidgan` command: parses options and calls one library function per command.

No logic lives here. Heavy imports (torch, cv2, av) happen inside the commands so that
`vidgan --help` stays instant. A VidganError becomes `error: <message>` and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from vidgan.errors import VidganError

app = typer.Typer(
    help="Restyle photos, video files and live video as Van Gogh paintings, in real time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelOpt = typer.Option(None, "--model", "-m", help="Model file (default: the bundled Van Gogh model).")


@app.command()
def info(model: Optional[Path] = ModelOpt) -> None:
    """Versions, GPU, codecs and backends; with --model, the model's size and GFLOPs."""
    from vidgan import sysinfo

    sysinfo.print_report(model)


@app.command()
def train(
    recipe: Optional[str] = typer.Argument(None, help="Recipe name in train/ or a TOML file (default: vangogh-fast)."),
    data: Optional[Path] = typer.Option(None, "--data", help="CycleGAN layout: trainA = paintings, trainB = photos."),
    data_a: Optional[Path] = typer.Option(None, "--data-a", help="Folder of paintings (instead of --data)."),
    data_b: Optional[Path] = typer.Option(None, "--data-b", help="Folder of photos (instead of --data)."),
    out: Path = typer.Option(Path("runs/vangogh"), "--out", help="Run folder: checkpoints, samples, logs, model file."),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    decay_epochs: Optional[int] = typer.Option(None, "--decay-epochs", help="Final epochs of linear lr decay."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    crop: Optional[int] = typer.Option(None, "--crop", help="Training crop size (images resized to crop*286/256 first)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    gan_loss: Optional[str] = typer.Option(None, "--gan-loss", help="lsgan or bce."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Epochs between checkpoints."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or auto."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data loading processes."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    warm_start: Optional[list[Path]] = typer.Option(None, "--warm-start", help="G then F model files to start from (give twice)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    export_only: Optional[Path] = typer.Option(None, "--export-only", help="Only write the model files of this checkpoint."),
) -> None:
    """Train CycleGAN generators (photo <-> painting) and write the photo -> painting model file."""
    from vidgan import recipes, training

    if export_only:
        path = training.export_checkpoint(export_only)
        print(f"wrote {path}")
        return
    if warm_start and len(warm_start) != 2:
        raise VidganError("--warm-start takes two model files: give it twice, G (photo->painting) then F")
    overrides = dict(
        data=_str(data), data_a=_str(data_a), data_b=_str(data_b), out=str(out), epochs=epochs,
        decay_epochs=decay_epochs, max_steps=max_steps, crop=crop, batch_size=batch_size, lr=lr,
        gan_loss=gan_loss, checkpoint_every=checkpoint_every, device=device, workers=workers, seed=seed,
        warm_start=[str(p) for p in warm_start] if warm_start else None,
    )
    if resume:
        cfg = training.resumed_config(out, overrides)
    else:
        cfg = recipes.load_config(training.TrainConfig, recipe, overrides)
    training.train(cfg, resume=resume)


def _str(path: Optional[Path]) -> Optional[str]:
    return None if path is None else str(path)


def main() -> None:
    try:
        app()
    except VidganError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
