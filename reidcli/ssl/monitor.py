"""Watching a pre-training run: collapse statistics and the progress display.

Self-distillation fails silently by collapse: the teacher either outputs the same uniform
distribution for every image (loss stuck at log K) or puts every image on the same few
prototypes. Both show in two numbers per epoch: the mean normalised entropy of the
teacher's per-image distribution (near 1 = uniform collapse), and the number of prototypes
the epoch actually used, exp(entropy of the epoch-mean distribution) (near 1 = every image
on one prototype).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from reidcli.utils.progress import EpochProgress

log = logging.getLogger(__name__)

UNIFORM_COLLAPSE = 0.97
"""Normalised teacher entropy above this means near-uniform outputs for every image."""
MIN_USED_PROTOTYPES = 2.0


class CollapseMonitor:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._entropy_sum = 0.0
        self._batches = 0
        self._mean_probs: torch.Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        """The running sums, for a resume in the middle of an epoch."""
        probs = None if self._mean_probs is None else self._mean_probs.detach().cpu().clone()
        return {"entropy_sum": self._entropy_sum, "batches": self._batches, "mean_probs": probs}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self._entropy_sum = float(state["entropy_sum"])
        self._batches = int(state["batches"])
        probs = state["mean_probs"]
        self._mean_probs = None if probs is None else probs.to(device)

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        probs = probs.float()
        k = probs.shape[-1]
        ent = -(probs * torch.log(probs.clamp(min=1e-12))).sum(-1).mean()
        self._entropy_sum += float(ent) / math.log(k)
        batch_mean = probs.mean(0)
        self._mean_probs = batch_mean if self._mean_probs is None else self._mean_probs + batch_mean
        self._batches += 1

    def summary(self, center: torch.Tensor) -> dict[str, float]:
        if not self._batches or self._mean_probs is None:
            return {"centre_norm": float(center.norm())}
        p = self._mean_probs / self._batches
        used = math.exp(float(-(p * torch.log(p.clamp(min=1e-12))).sum()))
        return {
            "teacher_entropy": self._entropy_sum / self._batches,
            "teacher_prototypes_used": used,
            "centre_norm": float(center.norm()),
        }

    @staticmethod
    def collapsed(stats: dict[str, float]) -> str | None:
        """A description of the collapse the statistics show, or None."""
        if stats.get("teacher_entropy", 0.0) > UNIFORM_COLLAPSE:
            return (
                f"teacher outputs are nearly uniform (normalised entropy "
                f"{stats['teacher_entropy']:.3f}): collapse to the centre"
            )
        if stats.get("teacher_prototypes_used", math.inf) < MIN_USED_PROTOTYPES:
            return (
                f"the teacher maps all images to ~{stats['teacher_prototypes_used']:.1f} "
                f"prototype(s): collapse to one output"
            )
        return None


class PretrainProgress(EpochProgress):
    """Epoch and iteration bars showing loss terms, lr, teacher momentum, temperature,
    images/s and ETA."""

    def step(self, terms: dict[str, float], lr: float, momentum: float, temp: float,
             ips: float) -> None:
        losses = "  ".join(f"{k} {v:.3f}" for k, v in terms.items())
        self.advance(f"{losses}  lr {lr:.2e}  m {momentum:.4f}  T {temp:.3f}  {ips:6.1f} img/s")
