"""The input shapes a TensorRT engine accepts (pure Python: checked before any build)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vidgan.core.errors import VidganError

# (min, opt, max) as (H, W); --min/--opt/--max override single entries.
PRESETS = {
    "default": ((256, 256), (720, 1280), (1920, 1920)),  # landscape and portrait up to 1080p
    "360p": ((256, 256), (360, 640), (360, 640)),
    "720p": ((256, 256), (720, 1280), (720, 1280)),
    "1080p": ((256, 256), (1080, 1920), (1080, 1920)),
}


@dataclass(frozen=True)
class Profile:
    """The input shapes an engine accepts: (H, W) ranges and the largest batch.

    TensorRT tunes kernels for `opt` at the largest batch; any shape in min..max runs.
    """

    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]
    batch: int = 1

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW shapes for IOptimizationProfile.set_shape."""
        return (1, 3, *self.min), (self.batch, 3, *self.opt), (self.batch, 3, *self.max)

    def as_dict(self) -> dict:
        low, opt, high = self.shapes()
        return {"min": list(low), "opt": list(opt), "max": list(high)}


def parse_shape(text: str | tuple[int, int], flag: str) -> tuple[int, int]:
    """'720x1280' -> (720, 1280); a one-line VidganError naming `flag` otherwise."""
    if isinstance(text, tuple):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise VidganError(f"{flag} takes HEIGHTxWIDTH, e.g. 720x1280, not {text!r}")
    return int(match[1]), int(match[2])


def make_profile(multiple: int, preset: str | None = None, min_shape=None, opt_shape=None,
                 max_shape=None, batch: int = 1) -> Profile:
    """A validated profile: a preset's shapes (rounded up to `multiple`), overridden by explicit
    HxW strings or tuples, which must already be multiples of `multiple`."""
    name = preset or "default"
    if name not in PRESETS:
        raise VidganError(f"unknown --profile {name!r}; choose one of: {', '.join(PRESETS)}")
    base = [tuple(round_up(s, multiple) for s in hw) for hw in PRESETS[name]]
    given = {"--min": min_shape, "--opt": opt_shape, "--max": max_shape}
    shapes = [parse_shape(value, flag) if value is not None else default
              for (flag, value), default in zip(given.items(), base)]
    profile = Profile(*shapes, batch=batch)
    validate_profile(profile, multiple)
    return profile


def validate_profile(profile: Profile, multiple: int) -> None:
    """Raise a one-line VidganError unless batch >= 1, sides are positive multiples of
    `multiple`, and min <= opt <= max side by side."""
    if profile.batch < 1:
        raise VidganError(f"--batch must be at least 1, not {profile.batch}")
    named = {"--min": profile.min, "--opt": profile.opt, "--max": profile.max}
    for flag, (h, w) in named.items():
        for side in (h, w):
            if side <= 0 or side % multiple:
                fix = f"{round_up(max(h, 1), multiple)}x{round_up(max(w, 1), multiple)}"
                raise VidganError(f"{flag} {h}x{w}: sides must be positive multiples of "
                                  f"{multiple} (the model's multiple); try {fix}")
    for axis in (0, 1):
        if not profile.min[axis] <= profile.opt[axis] <= profile.max[axis]:
            raise VidganError(f"profile shapes must satisfy min <= opt <= max in height and width; "
                              f"got min {_hw(profile.min)}, opt {_hw(profile.opt)}, "
                              f"max {_hw(profile.max)}")


def _hw(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
