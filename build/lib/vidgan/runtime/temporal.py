"""Flicker reduction for video: flow on the input frames, warp, occlusion mask, blend, scene cuts.

A generator run frame by frame flickers: its textures and InstanceNorm statistics jump between
frames that barely differ. `Stabilizer` carries the previous stabilized output along the motion
of the INPUT frames (optical flow, backward warping) and blends it with the new stylized frame
where that flow is reliable (forward-backward consistency, Ruder et al. 2016; Lai et al. 2018),
and starts afresh at scene cuts.

Where the work runs: the optical flow is OpenCV DIS on the CPU at a reduced resolution (a small
grayscale copy of each input frame; 2-9 ms a direction at 320x180 by preset), then the
reliability checks at that size. The full-resolution work (upsampling flow and mask, warp,
blend) runs where the frames are: OpenCV in uint8 for CPU frames; torch (`grid_sample`) on a
GPU, where each frame costs one small device->host copy (the thumbnail) and one small upload
(flow and mask).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidgan.core.errors import VidganError

PRESETS = ("ultrafast", "fast", "medium")


DEFAULT_STRENGTH = 0.7


def stabilize_strength_option(stabilize: bool, strength: float | None) -> float:
    """The strength for --stabilize-strength as given (None: not given): DEFAULT_STRENGTH when
    not given; a VidganError when given without --stabilize, where it would do nothing."""
    if strength is None:
        return DEFAULT_STRENGTH
    if not stabilize:
        raise VidganError("--stabilize-strength applies with --stabilize; add --stabilize or "
                          "drop the strength")
    if not 0.0 <= strength <= 1.0:  # NaN too
        raise VidganError(f"--stabilize-strength must be between 0 and 1, not {strength}")
    return strength


class Stabilizer:
    """Stateful per-frame stabilizer: `stab(frame, stylized) -> stylized`, called in frame order.

    frame, stylized: (H, W, 3) uint8 tensors on one device (the input frame and its stylized
    output), or (N, H, W, 3) batches of consecutive frames. Returns the stabilized stylized
    frame(s), same shape, dtype and device. The returned frame is what the next call blends
    from: don't modify it in place.

    strength: 0..1, the weight of the motion-compensated previous output where the flow is
        reliable (0 = off; 0.7 keeps roughly the last three frames).
    device: the kind of device the frames will be on (the backend's), checked at each call;
        None = any.
    flow_height: the height (px) at which optical flow runs; smaller is faster and coarser.
    preset: OpenCV DIS preset ("ultrafast", "fast", "medium"). "medium" costs about 8 ms more a
        frame than "fast" at 320x180 on a 2-core CPU, and its better flow smears less.
    cut_threshold: mean absolute difference (0..1) of 32 px wide grayscale thumbnails above which
        two consecutive frames count as a scene cut.
    min_reliable: a frame whose fraction of reliable flow is below this also counts as a cut.
    photo_threshold: input-brightness error (0..1) of the flow's own warp above which a pixel is
        unreliable: catches flow errors that pass the forward-backward check.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, device: torch.device | str | None = None, *,
                 flow_height: int = 180, preset: str = "medium", cut_threshold: float = 0.12,
                 min_reliable: float = 0.4, photo_threshold: float = 0.12):
        if not 0.0 <= strength <= 1.0:
            raise VidganError(f"stabilize strength must be between 0 and 1, not {strength}")
        if preset not in PRESETS:
            raise VidganError(f"unknown flow preset {preset!r}; choose from {', '.join(PRESETS)}")
        self.strength = strength
        self.device = torch.device(device) if device is not None else None
        self.flow_height = flow_height
        self.cut_threshold = cut_threshold
        self.min_reliable = min_reliable
        self.photo_threshold = photo_threshold * 255.0
        self._dis = _dis(preset)
        self._grids: dict[tuple, object] = {}  # identity grids and maps by size
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame passes through unchanged."""
        self._prev_gray: np.ndarray | None = None  # (h, w) uint8, flow resolution, on the CPU
        # previous stabilized output: (H, W, 3) uint8 numpy on the CPU, else (1, 3, H, W)
        # float32 channels_last on the device
        self._prev_out: np.ndarray | torch.Tensor | None = None
        self._size: tuple | None = None  # shape and device of the frames in _prev_out
        self.cuts = 0  # scene cuts seen since the last reset (for reports)
        self.reliable = 0.0  # fraction of reliable flow at the last frame

    def __call__(self, frame: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        if frame.shape != stylized.shape or stylized.dtype != torch.uint8 or frame.shape[-1] != 3:
            raise ValueError(f"frame {tuple(frame.shape)} and stylized {tuple(stylized.shape)}: "
                             "expected uint8 (H, W, 3) or (N, H, W, 3) tensors of one shape")
        if self.device is not None and stylized.device.type != self.device.type:
            raise ValueError(f"frames on {stylized.device}; this Stabilizer is for {self.device}")
        if self.strength == 0.0:
            return stylized
        if stylized.dim() == 4:
            out = torch.empty_like(stylized)
            for i in range(stylized.shape[0]):
                out[i] = self._step(frame[i], stylized[i])
            return out
        return self._step(frame, stylized)

    def _step(self, frame: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        gray = _gray_thumbnail(frame, self.flow_height)
        prev_gray, self._prev_gray = self._prev_gray, gray
        if prev_gray is None or self._size != (stylized.shape, stylized.device):
            return self._restart(stylized)
        if _thumbnail_change(gray, prev_gray) > self.cut_threshold:
            self.cuts += 1
            return self._restart(stylized)
        flow, reliable = reliable_flow(self._dis, gray, prev_gray, self.photo_threshold)
        self.reliable = float(reliable.mean())
        if self.reliable < self.min_reliable:
            self.cuts += 1
            return self._restart(stylized)
        if self._opencv(stylized.device):
            return self._blend_cpu(stylized, flow, reliable)
        return self._blend_device(stylized, flow, reliable)

    @staticmethod
    def _opencv(device: torch.device) -> bool:
        """OpenCV for CPU frames: faster than torch's small ops on a busy few-core CPU."""
        return device.type == "cpu"

    def _restart(self, stylized: torch.Tensor) -> torch.Tensor:
        self._size = (stylized.shape, stylized.device)
        if self._opencv(stylized.device):
            self._prev_out = stylized.numpy()
        else:
            self._prev_out = stylized.permute(2, 0, 1).unsqueeze(0).float()
        return stylized

    def _blend_cpu(self, stylized: torch.Tensor, flow: np.ndarray, reliable: np.ndarray):
        """Warp and blend at full resolution with OpenCV, in uint8 (the memory traffic is the
        cost); `_prev_out` is the returned (H, W, 3) array itself."""

        H, W = stylized.shape[:2]
        h, w = reliable.shape
        base_x, base_y = self._base_maps(H, W)
        map_x = cv2.add(cv2.resize(flow[..., 0] * (W / w), (W, H)), base_x)
        map_y = cv2.add(cv2.resize(flow[..., 1] * (H / h), (W, H)), base_y)
        weight = cv2.resize(reliable * self.strength, (W, H))
        warped = cv2.remap(self._prev_out, map_x, map_y, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        self._prev_out = cv2.blendLinear(warped, stylized.numpy(), weight, 1.0 - weight)
        return torch.from_numpy(self._prev_out)

    def _blend_device(self, stylized: torch.Tensor, flow: np.ndarray, reliable: np.ndarray):
        """torch on the frames' device (GPU): only the low-resolution flow is uploaded."""
        # (H, W, 3) memory viewed as NCHW is channels_last: no copy until the float conversion
        new = stylized.permute(2, 0, 1).unsqueeze(0).float()
        grid, weight = self._upload(flow, reliable, new)
        warped = F.grid_sample(self._prev_out, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)
        out = new.lerp_(warped, weight.mul_(self.strength))
        self._prev_out = out
        return out.round().clamp_(0, 255).to(torch.uint8).squeeze(0).permute(1, 2, 0)

    def _upload(self, flow: np.ndarray, reliable: np.ndarray, like: torch.Tensor):
        """Low-res flow (px) and reliability -> full-res sampling grid and weight on the device.

        One upload and one interpolation for both. Returns grid (1, H, W, 2) in grid_sample's
        normalized units and weight (1, 1, H, W) in 0..1.
        """
        h, w = reliable.shape
        small = np.empty((1, 3, h, w), np.float32)
        small[0, 0] = flow[..., 0] * (2.0 / w)  # low-res px -> normalized units (same at any size)
        small[0, 1] = flow[..., 1] * (2.0 / h)
        small[0, 2] = reliable
        H, W = like.shape[-2:]
        big = F.interpolate(torch.from_numpy(small).to(like.device, non_blocking=True), size=(H, W),
                            mode="bilinear", align_corners=False)
        grid = self._base_grid(H, W, like.device) + big[:, :2].permute(0, 2, 3, 1)
        return grid, big[:, 2:]

    def _base_maps(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """The identity maps for cv2.remap: x and y pixel coordinates, (h, w) float32 each."""
        key = (h, w, "maps")
        if key not in self._grids:
            x = np.broadcast_to(np.arange(w, dtype=np.float32), (h, w))
            y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
            self._grids[key] = (np.ascontiguousarray(x), np.ascontiguousarray(y))
        return self._grids[key]

    def _base_grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._grids:
            ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=device)
            xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=device)
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            self._grids[key] = torch.stack([gx, gy], dim=-1).unsqueeze(0)
        return self._grids[key]


def _dis(preset: str):
    return cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))


def _gray_thumbnail(frame: torch.Tensor, height: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB on any device -> (h, w) uint8 grayscale numpy, h = min(H, height)."""

    H, W = frame.shape[:2]
    h = min(H, height)
    w = max(8, round(W * h / H))
    if frame.device.type == "cpu":
        gray = cv2.cvtColor(frame.numpy(), cv2.COLOR_RGB2GRAY)
        return gray if h == H else cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
    # on a GPU shrink first, so only the thumbnail crosses to the host
    rgb = frame.permute(2, 0, 1).unsqueeze(0).float()
    r, g, b = F.interpolate(rgb, size=(h, w), mode="area")[0]
    luma = r.mul_(0.299).add_(g, alpha=0.587).add_(b, alpha=0.114)  # cv2's RGB2GRAY weights
    return luma.round_().to(torch.uint8).cpu().numpy()


def _thumbnail_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0..1) of 32 px wide versions of two grayscale images."""

    size = (32, max(2, round(32 * a.shape[0] / a.shape[1])))
    ta = cv2.resize(a, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    tb = cv2.resize(b, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    return float(np.abs(ta - tb).mean() / 255.0)


def reliable_flow(dis, cur: np.ndarray, prev: np.ndarray, photo_threshold: float):
    """Backward flow cur -> prev and where it can be trusted, both at the thumbnails' size.

    cur, prev: (h, w) uint8 grayscale. Returns flow (h, w, 2) float32 in px, with
    cur(x) ~ prev(x + flow(x)), and reliable (h, w) float32 in {0, 1}: forward-backward
    consistent, not on a motion boundary, inside the frame, and the flow's warp of `prev`
    matches `cur` within `photo_threshold` (0..255). Unreliable areas are grown by one pixel
    so that the upsampled weight does not reach over object edges.
    """

    backward = dis.calc(cur, prev, None)
    forward = dis.calc(prev, cur, None)
    map_x, map_y = sample_maps(backward)
    ok = consistency_mask(backward, forward, map_x, map_y)
    warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ok &= cv2.absdiff(cur, warped) <= photo_threshold
    ok = cv2.erode(ok.view(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return backward, ok.astype(np.float32)


def sample_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (x + u, y + v) for a flow field (h, w, 2) in px."""
    h, w = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(w, dtype=np.float32)
    map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    return map_x, map_y


def consistency_mask(backward: np.ndarray, forward: np.ndarray, map_x: np.ndarray | None = None,
                     map_y: np.ndarray | None = None) -> np.ndarray:
    """Non-occluded pixels of frame t: Ruder et al. 2016's check, as in Lai et al. 2018's code.

    backward: flow t -> t-1, forward: flow t-1 -> t, each (h, w, 2) float32 px. A pixel is kept
    when the forward flow, sampled where the backward flow points, cancels the backward flow
    (|b + f~|^2 <= 0.01 (|b|^2 + |f~|^2) + 0.5), it is not on a motion boundary
    (|grad b|^2 <= 0.01 |b|^2 + 0.002) and it points inside frame t-1. Returns (h, w) bool.
    """

    if map_x is None or map_y is None:
        map_x, map_y = sample_maps(backward)
    fwd = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    bu, bv = cv2.split(backward)  # contiguous planes: numpy reduces a last axis of 2 slowly
    fu, fv = cv2.split(fwd)
    b2 = bu * bu + bv * bv
    ok = (bu + fu) ** 2 + (bv + fv) ** 2 <= 0.01 * (b2 + fu * fu + fv * fv) + 0.5
    (uy, ux), (vy, vx) = np.gradient(bu), np.gradient(bv)
    ok &= ux * ux + uy * uy + vx * vx + vy * vy <= 0.01 * b2 + 0.002
    h, w = backward.shape[:2]
    ok &= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return ok
