"""iBOT block-wise masks on the patch-token grid of the global views.

A mask is grown block by block (BEiT/iBOT): each block has a random area drawn uniformly
between (min(H, W) // 3)^2 patches and the count still to mask (either way round: when
less than a minimum block is left, the area lies between the two, as iBOT's
`random.uniform(low, budget)`), a log-uniform aspect ratio in [0.3, 1/0.3], and is kept
only if it adds new patches without overshooting the target count, so the masked share
never exceeds the drawn ratio. Half of the global views (a fair coin per view) stay
unmasked, so the student also learns from complete global views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskSpec:
    ratio_range: tuple[float, float] = (0.1, 0.5)
    """The masked share of a masked view is drawn uniformly from this range."""
    unmasked_prob: float = 0.5
    """Probability that a global view is left unmasked."""
    min_aspect: float = 0.3
    max_aspect: float | None = None
    """Block aspect ratios (h/w) are log-uniform in [min_aspect, max_aspect or 1/min_aspect]."""
    attempts: int = 10


def min_block_area(grid: tuple[int, int]) -> int:
    return (min(grid) // 3) ** 2


def block_mask(
    grid: tuple[int, int],
    num_patches: float,
    rng: np.random.Generator,
    spec: MaskSpec = MaskSpec(),
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Mask up to `num_patches` cells of an (H, W) grid with blocks.

    Returns the boolean mask and the blocks placed as (top, left, height, width); blocks
    may overlap earlier ones (only new cells count towards the target).
    """
    height, width = grid
    mask = np.zeros(grid, dtype=bool)
    blocks: list[tuple[int, int, int, int]] = []
    max_aspect = spec.max_aspect or 1 / spec.min_aspect
    log_aspect = (math.log(spec.min_aspect), math.log(max_aspect))
    low = min_block_area(grid)
    count = 0
    while count < num_patches:
        budget = num_patches - count
        added = 0
        for _ in range(spec.attempts):
            # iBOT draws random.uniform(low, budget) even when the budget left is below
            # the minimum block: the area then lies between the two.
            area = low + (budget - low) * rng.random()
            aspect = math.exp(rng.uniform(*log_aspect))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if not (0 < h < height and 0 < w < width):
                continue
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            new = h * w - int(mask[top : top + h, left : left + w].sum())
            if 0 < new <= budget:
                mask[top : top + h, left : left + w] = True
                blocks.append((top, left, h, w))
                added = new
                break
        if added == 0:
            break
        count += added
    return mask, blocks


def view_masks(
    grid: tuple[int, int], n_views: int, rng: np.random.Generator, spec: MaskSpec = MaskSpec()
) -> list[np.ndarray]:
    """One mask per global view: empty with probability `unmasked_prob`, else block-masked."""
    n = grid[0] * grid[1]
    masks = []
    for _ in range(n_views):
        if rng.random() < spec.unmasked_prob:
            masks.append(np.zeros(grid, dtype=bool))
            continue
        ratio = rng.uniform(*spec.ratio_range)
        masks.append(block_mask(grid, ratio * n, rng, spec)[0])
    return masks
