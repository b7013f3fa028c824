"""How close a distilled student comes to its teacher, and how steady it is on video.

    python benchmarks/student.py quality --student S --teacher T   # valB: SSIM, yardstick, grid
    python benchmarks/student.py flicker --student S --teacher T   # real clips: warping error
    python benchmarks/student.py card --run RUN [--bundle]          # FP16 file + its card section

quality: on every valB photo, through vidgan's own pipeline (onnxruntime on the CPU), the mean
SSIM between student and teacher outputs, and for each model the yardstick's report (painting
rate, luminance SSIM to the photo, both at once; benchmarks/yardstick.py); a grid
photo | teacher | student.
flicker: each clip in ../shared/data/videos cut to its first SECONDS at 320 px wide, rendered by
teacher and student, and the student with --stabilize; `vidgan eval --video`'s warping error.
Results go to benchmarks/results/student-{quality,flicker}.json.
card: bundles RUN's student as FP16 in vidgan/weights/ and writes its section of MODEL_CARD.md
from the run and those results (int8.json too, when there).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yardstick

RESULTS = Path(__file__).resolve().parent / "results"
VIDEOS = yardstick.DATA.parent / "videos"
CLIPS = ("chaplin", "cockatoo_yuv420", "realshort", "doc_medias_example2")


def quality(student: Path, teacher: Path, data: Path, grid: Path | None, limit: int | None) -> dict:
    from skimage.metrics import structural_similarity

    judges, _ = yardstick.cached_judges(data, yardstick.CLIPS)
    photos = yardstick.load_images(yardstick.image_paths(data / "valB")[:limit])
    print(f"stylizing {len(photos)} valB photos with the teacher, then the student")
    by_teacher, teacher_out, _ = yardstick.measure(judges, teacher, photos)
    by_student, student_out, _ = yardstick.measure(judges, student, photos)
    ssim = [structural_similarity(t, s, channel_axis=2, data_range=255)
            for t, s in zip(teacher_out, student_out)]
    if grid is not None:
        _write_grid(photos, teacher_out, student_out, grid)
    return {"photos": len(photos), "student": student.name, "teacher": teacher.name,
            "ssim_student_teacher": round(float(np.mean(ssim)), 4),
            "ssim_student_teacher_p10": round(float(np.percentile(ssim, 10)), 4),
            "teacher_yardstick": by_teacher, "student_yardstick": by_student}


def _write_grid(photos, by_teacher, by_student, path: Path, rows: int = 6) -> None:
    """photo | teacher | student, for `rows` photos spread over the set."""
    picks = np.linspace(0, len(photos) - 1, rows).round().astype(int)
    grid = np.vstack([np.hstack([photos[i], by_teacher[i], by_student[i]]) for i in picks])
    Image.fromarray(grid).save(path, quality=80)  # under 300 kB, like the teacher's images
    print(f"wrote {path}")


def flicker(student: Path, teacher: Path, seconds: float, width: int = 320) -> dict:
    from vidgan.evaluation.flicker import video_stability
    from vidgan.pipelines.render import render_video
    from vidgan.runtime.stylizer import Stylizer

    rows = {}
    with tempfile.TemporaryDirectory(prefix="vidgan-flicker-") as tmp:
        for name in CLIPS:
            clip = _cut(VIDEOS / f"{name}.mp4", Path(tmp) / f"{name}.mp4", seconds, width)
            runs = {"teacher": (teacher, False), "student": (student, False),
                    "student_stabilized": (student, True)}
            row = {}
            for label, (model, stabilize) in runs.items():
                out = Path(tmp) / f"{name}-{label}.mp4"
                stylizer = Stylizer.build(model, device="cpu", stabilize=0.7 if stabilize else None)
                result = render_video(clip, out, stylizer, progress=False)
                report = video_stability(clip, out, height=None)
                row[label] = round(report["warping_error_rendered"], 6)
                row[f"{label}_fps"] = round(result.fps, 1)
                row["input"] = round(report["warping_error_input"], 6)
            rows[name] = row
            print(name, json.dumps(row))
    return {"seconds": seconds, "width": width, "clips": rows}


def _cut(src: Path, dst: Path, seconds: float, width: int) -> Path:
    """The first `seconds` of `src` at `width` px wide (even height), near-lossless H.264."""
    import cv2

    from vidgan.runtime.video import VideoReader, VideoWriter, probe

    info = probe(src)
    height = round(info.height * width / info.width / 2) * 2
    with VideoWriter(dst, width, height, rate=info.rate or Fraction(25), crf=10) as writer:
        for frame in VideoReader(info, 0, seconds):
            writer.write(cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA))
    return dst


# --- the card -------------------------------------------------------------------------------


def card(run: Path, bundle: bool, notes: str, shipped: str | None = None) -> Path:
    import model_card
    import torch

    from vidgan.core import modelfile
    from vidgan.train.distill import DistillConfig
    from vidgan.train.recipes import from_saved, load_config, saved_config
    from vidgan.train.trainlog import DISTILL_PANELS, plot_losses

    target, card_path = modelfile.REALTIME, modelfile.WEIGHTS_DIR / "MODEL_CARD.md"
    if bundle:
        student, info = modelfile.load_model(run / "model.safetensors")
        # the recipe alone, whatever version wrote the run: no path of this machine ships
        recipe = saved_config(from_saved(DistillConfig, info.config), with_run=False)
        if shipped:  # the run used a copy of a shipped recipe: name it, once it is the same
            same = saved_config(load_config(DistillConfig, shipped, {}), with_run=False)
            if {**same["recipe"], "recipe": ""} != {**recipe["recipe"], "recipe": ""}:
                sys.exit(f"error: {run}'s recipe is not the shipped {shipped}")
            recipe = same
        modelfile.save_model(target, student, info.arch, info.kwargs, config=recipe,
                             training=info.training, dtype=torch.float16)
    info = modelfile.read_info(target)
    loss_png = target.with_name(f"{target.stem}-losses.png")
    plot_losses(model_card.loss_rows(run), loss_png, panels=DISTILL_PANELS)
    parts = [
        model_card.STUDENT_MARK,
        _header(target, info),
        _recipe(info.recipe),
        _training(info, loss_png),
        _quality_section(target.with_name(f"{target.stem}-samples.jpg")),
        _flicker_section(),
        _int8_section(),
        f"### Known weaknesses\n\n{notes.strip()}" if notes.strip() else "",
    ]
    text = model_card.student_section(card_path)
    head = card_path.read_text()[: -len(text)] if text else card_path.read_text()
    model_card.write_card(card_path, head.rstrip("\n") + "\n\n" + "\n\n".join(p for p in parts if p) + "\n")
    print(f"wrote {card_path}, {loss_png}")
    return card_path


def _header(target: Path, info) -> str:
    from vidgan.core import modelfile, models

    teacher = modelfile.BUNDLED
    net, big = info.build(), modelfile.read_info(teacher).build()
    origin = info.training["distilled_from"]
    row = (f"| `{target.name}` | {models.count_parameters(net) / 1e3:.0f} k | "
           f"{target.stat().st_size / 1e3:.0f} kB | `{modelfile.file_hash(target)}` | "
           f"{models.gflops(net):.2f} / {models.gflops(net, 720, 1280):.1f} (teacher "
           f"{models.gflops(big):.1f} / {models.gflops(big, 720, 1280):.0f}) |")
    return (f"## {target.stem}: the real-time student (`--quality fast`)\n\n"
            f"Distilled with `vidgan distill` from `{origin['file']}` (sha256[:16] "
            f"`{origin['hash']}`): it learns the teacher's output on photos, not the paintings, so "
            "it can only be as good a painter as its teacher. `vidgan live` and `vidgan demo` "
            "run it on a CPU; `--quality fast` picks it anywhere.\n\n"
            "| file | parameters | size | sha256[:16] | GFLOP per 256x256 / 1280x720 frame |\n"
            f"|---|---|---|---|---|\n{row}\n\n"
            f"Architecture: `{info.arch}` {json.dumps(info.kwargs)} (multiple of {info.multiple} px).")


def _recipe(cfg: dict) -> str:
    machine_local = ("teacher", "data", "photos", "out", "device", "workers")
    rows = "\n".join(f"| {k} | `{json.dumps(v)}` |" for k, v in cfg.items() if k not in machine_local)
    return f"### Recipe\n\n| setting | value |\n|---|---|\n{rows}"


def _training(info, loss_png: Path) -> str:
    import model_card

    t = info.training
    losses = ", ".join(f"{k} {v}" for k, v in t["final_losses"].items())
    return (f"### Training\n\n{t['steps']:,} steps of batch {info.recipe['batch_size']} in "
            f"{model_card.duration(t['train_seconds'])} on {model_card.hardware(t['device'])}; "
            f"final losses (mean of the last 50 logged steps): {losses}.\n\n"
            f"![distillation losses]({loss_png.name})")


def _read(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _quality_section(grid: Path) -> str:
    q = _read("student-quality.json")
    if q is None:
        return "### Quality\n\nNot measured yet: `python benchmarks/student.py quality`."
    s, t = q["student_yardstick"], q["teacher_yardstick"]
    splits = {"choice": "the first 60 (recipes were chosen on them)",
              "unseen": "the other 140 (no choice saw them)", "all": "all 200"}
    rows = [(f"judged paintings: {name}", f"{t[k]['called_painting']:.0%}", f"{s[k]['called_painting']:.0%}")
            for k, name in splits.items()]
    s, t = s["all"], t["all"]
    rows += [("judged paintings with luminance SSIM >= 0.5, all 200", f"{t['painting_and_ssim']:.0%}",
              f"{s['painting_and_ssim']:.0%}"),
             ("luminance SSIM to the photo", f"{t['ssim_mean']:.3f}", f"{s['ssim_mean']:.3f}"),
            ("SSIM to the teacher's output", "1",
             f"{q['ssim_student_teacher']:.3f} (10th percentile {q['ssim_student_teacher_p10']:.3f})")]
    table = "| valB photos | teacher | student |\n|---|---|---|\n"
    table += "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    image = f"\n\n![photo, teacher, student]({grid.name})" if grid.is_file() else ""
    return ("### Quality\n\n`python benchmarks/student.py quality` (through vidgan's own "
            "pipeline, onnxruntime on the CPU; the yardstick is `benchmarks/yardstick.py`'s "
            "two-view judge):\n\n" + table + image)


def _flicker_section() -> str:
    f = _read("student-flicker.json")
    if f is None:
        return ""
    head = ("| clip | input (floor) | teacher | student | student `--stabilize` |\n"
            "|---|---|---|---|---|\n")
    rows = "\n".join(f"| {name} | {r['input']:.5f} | {r['teacher']:.5f} | {r['student']:.5f} | "
                      f"{r['student_stabilized']:.5f} |" for name, r in f["clips"].items())
    return (f"### Flicker\n\nWarping error per frame (`python benchmarks/student.py flicker`: the "
            f"first {f['seconds']:g} s of each clip at {f['width']} px wide, `vidgan eval "
            f"--video`), lower is steadier:\n\n" + head + rows)


def _int8_section() -> str:
    q = _read("int8.json")
    if q is None:
        return ""
    verdict = ("`--precision int8` runs it" if q["kept"] else
               f"`--precision int8` refuses it ({q['check_images_psnr_db']} dB on vidgan's check "
               "images)")
    return (f"### int8\n\nonnxruntime static quantization, calibrated on vidgan's sample photos, "
            f"flat colours and a ramp, is kept only within {q['min_psnr_bound_db']:.0f} dB PSNR of "
            f"fp32: {verdict}. Measured anyway (`python benchmarks/int8.py`, through vidgan's "
            f"backend): {q['fps_int8']} fps against "
            f"fp32's {q['fps_fp32']} at {q['size']} in the same run ({q['speedup']:.2f}x), output "
            f"{q['psnr_int8_vs_fp32_db']} dB PSNR from fp32 on average (lowest {q['psnr_min_db']} dB) "
            f"over {q['photos']} valB photos.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("quality", "flicker", "card"))
    parser.add_argument("--student", type=Path, help="quality, flicker: the student's model file")
    parser.add_argument("--teacher", type=Path, help="quality, flicker: the teacher's model file")
    parser.add_argument("--run", type=Path, help="card: the distillation run folder")
    parser.add_argument("--bundle", action="store_true", help="card: first bundle RUN's student")
    parser.add_argument("--recipe", help="card: the shipped recipe RUN's recipe is a copy of")
    parser.add_argument("--notes", type=Path, help="card: Markdown for its weaknesses")
    parser.add_argument("--data", type=Path, default=yardstick.DATA)
    parser.add_argument("--grid", type=Path, help="quality: write photo | teacher | student here")
    parser.add_argument("--limit", type=int, help="quality: only the first N valB photos")
    parser.add_argument("--seconds", type=float, default=3.0, help="flicker: length of each clip")
    parser.add_argument("--out", type=Path, help="folder for the result JSON (default: the cache's results/; copy it into benchmarks/results/ to record it)")
    args = parser.parse_args()
    if args.what == "card":
        card(args.run, args.bundle, args.notes.read_text() if args.notes else "", args.recipe)
        return
    if args.what == "quality":
        result = quality(args.student, args.teacher, args.data, args.grid, args.limit)
    else:
        result = flicker(args.student, args.teacher, args.seconds)
    print(json.dumps(result, indent=2))
    from vidgan.tools.bench.results import write_result

    write_result(f"student-{args.what}", result, args.out)


if __name__ == "__main__":
    main()
