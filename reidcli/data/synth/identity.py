"""What a person looks like: clothing palettes and the persistent attributes of an identity."""

from __future__ import annotations

import colorsys
import dataclasses
from dataclasses import dataclass

import numpy as np

from reidcli.data.synth.common import RGB, clamp_rgb

UPPER_PATTERNS = ("solid", "stripes", "checks", "logo")
LOWER_PATTERNS = ("solid", "stripes", "checks")
LOWER_KINDS = ("trousers", "shorts", "skirt")
SLEEVES = ("long", "short")
BAGS = ("none", "backpack", "handbag", "shoulder")

# Everyday clothing colours. A small shared table on purpose: many identities wear the
# same colour, so colour alone never identifies a person.
CLOTHING_COLOURS: tuple[RGB, ...] = (
    (20, 20, 24), (60, 60, 66), (128, 128, 132), (225, 225, 220), (30, 40, 90),
    (70, 110, 170), (140, 30, 35), (200, 60, 50), (40, 90, 50), (120, 140, 70),
    (150, 110, 70), (200, 180, 140), (220, 190, 60), (210, 120, 40), (120, 60, 130),
    (220, 140, 170),
)
SKIN_TONES: tuple[RGB, ...] = (
    (250, 215, 190), (235, 190, 160), (210, 160, 120), (175, 125, 90), (130, 90, 60),
    (95, 65, 45),
)
HAIR_TONES: tuple[RGB, ...] = (
    (15, 12, 10), (50, 35, 25), (95, 65, 40), (170, 140, 90), (160, 160, 160), (130, 60, 30),
)
# Attribute probabilities, as rough street statistics: most clothes are plain, most people
# wear trousers and carry no bag.
UPPER_PATTERN_P = (0.55, 0.18, 0.12, 0.15)
LOWER_PATTERN_P = (0.8, 0.1, 0.1)
LOWER_KIND_P = (0.65, 0.2, 0.15)
BAG_P = (0.4, 0.3, 0.15, 0.15)


@dataclass(frozen=True, slots=True)
class Palette:
    """A clothing colour distribution: the colours a population wears and how often."""

    colours: tuple[RGB, ...]
    weights: tuple[float, ...]

    def sample(self, rng: np.random.Generator, jitter: float = 8.0) -> RGB:
        i = rng.choice(len(self.colours), p=self.weights)
        return clamp_rgb(np.asarray(self.colours[i], float) + rng.normal(0.0, jitter, 3))


def target_palette(rng: np.random.Generator) -> Palette:
    """The target world's palette: the shared table with seed-dependent popularity."""
    weights = rng.dirichlet(np.full(len(CLOTHING_COLOURS), 1.5))
    return Palette(CLOTHING_COLOURS, tuple(float(w) for w in weights))


def foreign_palette(rng: np.random.Generator) -> Palette:
    """Another population's palette: its own hue family, saturation and brightness.

    Other domains (other countries, seasons, indoor scenes) dress differently; these
    colours are drawn away from the target table so a domain filter has something to find.
    """
    hue0 = rng.random()
    sat_lo, sat_hi = sorted(rng.uniform(0.2, 1.0, 2))
    val_lo, val_hi = sorted(rng.uniform(0.15, 1.0, 2))
    colours = []
    for _ in range(12):
        hue = (hue0 + rng.normal(0.0, 0.12)) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(sat_lo, sat_hi), rng.uniform(val_lo, val_hi))
        colours.append(clamp_rgb((r * 255, g * 255, b * 255)))
    weights = rng.dirichlet(np.full(len(colours), 0.7))
    return Palette(tuple(colours), tuple(float(w) for w in weights))


@dataclass(frozen=True, slots=True)
class Identity:
    """Everything that stays the same for one person across cameras and frames."""

    skin: RGB
    hair: RGB
    hair_long: bool
    upper: RGB
    upper_second: RGB
    upper_pattern: str
    sleeves: str
    lower: RGB
    lower_second: RGB
    lower_pattern: str
    lower_kind: str
    bag: str
    bag_colour: RGB
    bag_side: int
    shoes: RGB
    height: float
    width: float


def _pick(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...]) -> str:
    return options[int(rng.choice(len(options), p=p))]


def _tone(rng: np.random.Generator, tones: tuple[RGB, ...], jitter: float) -> RGB:
    base = np.asarray(tones[int(rng.integers(len(tones)))], float)
    return clamp_rgb(base + rng.normal(0.0, jitter, 3))


def sample_identity(rng: np.random.Generator, palette: Palette) -> Identity:
    """A new person whose clothes follow `palette`."""
    upper = palette.sample(rng)
    lower = palette.sample(rng)
    return Identity(
        skin=_tone(rng, SKIN_TONES, 6.0),
        hair=_tone(rng, HAIR_TONES, 6.0),
        hair_long=bool(rng.random() < 0.35),
        upper=upper,
        upper_second=palette.sample(rng),
        upper_pattern=_pick(rng, UPPER_PATTERNS, UPPER_PATTERN_P),
        sleeves=_pick(rng, SLEEVES, (0.6, 0.4)),
        lower=lower,
        lower_second=palette.sample(rng),
        lower_pattern=_pick(rng, LOWER_PATTERNS, LOWER_PATTERN_P),
        lower_kind=_pick(rng, LOWER_KINDS, LOWER_KIND_P),
        bag=_pick(rng, BAGS, BAG_P),
        bag_colour=palette.sample(rng),
        bag_side=1 if rng.random() < 0.5 else -1,
        shoes=_tone(rng, CLOTHING_COLOURS[:4] + CLOTHING_COLOURS[10:12], 8.0),
        height=float(rng.uniform(0.86, 1.0)),
        width=float(rng.uniform(0.82, 1.22)),
    )


# Attribute groups a near twin may differ in; each group is re-drawn as a whole.
_TWIN_GROUPS = (
    ("upper",), ("upper_pattern", "upper_second"), ("lower",), ("lower_kind",),
    ("bag", "bag_colour", "bag_side"), ("hair", "hair_long"), ("shoes",), ("sleeves",),
)


def near_twin(rng: np.random.Generator, base: Identity, palette: Palette) -> Identity:
    """A different person who shares most of `base`'s appearance (a hard negative).

    One or two attribute groups are re-drawn from a fresh identity; body shape is always
    perturbed slightly so twins are not pixel-identical.
    """
    fresh = sample_identity(rng, palette)
    n_groups = 1 + int(rng.random() < 0.5)
    chosen = rng.choice(len(_TWIN_GROUPS), n_groups, replace=False)
    changes = {name: getattr(fresh, name) for g in chosen for name in _TWIN_GROUPS[int(g)]}
    changes["height"] = float(np.clip(base.height + rng.normal(0.0, 0.02), 0.86, 1.0))
    changes["width"] = float(np.clip(base.width + rng.normal(0.0, 0.04), 0.82, 1.22))
    return dataclasses.replace(base, **changes)
