"""What CycleGAN training and distillation share about their discriminators: the losses, and
the check of a recipe's discriminator_kwargs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidgan.core import models
from vidgan.core.errors import VidganError


def adversarial_loss(kind: str, logits: torch.Tensor, real: bool) -> torch.Tensor:
    """"lsgan" (the paper's least squares) or "bce" against an all-real or all-fake target."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def discriminator_loss(kind: str, logits: torch.Tensor, n: int) -> torch.Tensor:
    """A discriminator's loss on one batch of n real images followed by fakes: half each."""
    return 0.5 * (adversarial_loss(kind, logits[:n], True) + adversarial_loss(kind, logits[n:], False))


def check_discriminator(kwargs: dict) -> None:
    """VidganError when a recipe's discriminator_kwargs do not build a PatchGAN."""
    try:
        with torch.device("meta"):
            models.build("patchgan", **kwargs)
    except (TypeError, ValueError) as exc:
        raise VidganError(f"discriminator_kwargs {kwargs} do not fit the patchgan discriminator: "
                          f"{exc}") from None
