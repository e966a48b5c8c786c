"""The world a seed defines: the target population and cameras, and the foreign domains.

`synth market` and `synth unlabeled` with the same seed and camera strength build the same
`World`, so their target cameras and clothing palette are identical - the "target-like"
share of an unlabeled set really looks like the labelled target dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from reidcli.data.synth.camera import (
    TEXTURES,
    CameraStyle,
    apply_camera,
    noise_field,
    render_background,
    sample_background,
    sample_camera_style,
    tone_lut,
)
from reidcli.data.synth.common import (
    TAG_BACKGROUND,
    TAG_CAMERA,
    TAG_DOMAIN,
    TAG_IMAGE,
    TAG_NOISE,
    TAG_PALETTE,
    check_camera_strength,
    check_seed,
    rng_for,
)
from reidcli.data.synth.identity import Identity, Palette, foreign_palette, target_palette
from reidcli.data.synth.render import draw_occluder, draw_person, mirror, sample_shot

TARGET = -1
"""`StyleRef.domain` of the target cameras; foreign domains are numbered from 0."""

# Crop sizes other sources use (HxW): different resolutions and aspect ratios.
FOREIGN_SIZES = ((256, 128), (192, 96), (160, 64), (128, 48), (96, 48), (112, 56), (200, 80),
                 (144, 72))


@dataclass(frozen=True, slots=True)
class StyleRef:
    """Which camera took an image: target camera `index`, or foreign `domain`'s video `index`."""

    domain: int
    index: int


@dataclass(frozen=True, slots=True)
class ForeignDomain:
    """Another source of person images: its population, scenery, cameras and resolutions."""

    palette: Palette
    textures: tuple[str, ...]
    value_range: tuple[float, float]
    spread: float
    quality_floor: int
    sizes: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class RenderJob:
    """One image to produce. Everything random about it follows from the world seed and `key`."""

    relpath: str
    size: tuple[int, int]
    style: StyleRef
    person: Identity | None
    fragment: bool = False
    occlusion: float = 0.0
    key: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Scene:
    style: CameraStyle
    background: Image.Image
    noise: Image.Image | None
    lut: np.ndarray


class World:
    """Camera styles, palettes and scenes derived from one seed (cached per process)."""

    def __init__(self, seed: int, camera_strength: float = 1.0) -> None:
        self.camera_strength = check_camera_strength(camera_strength)
        self.seed = check_seed(seed)
        self.palette = target_palette(rng_for(seed, TAG_PALETTE))
        self._styles: dict[StyleRef, CameraStyle] = {}
        self._domains: dict[int, ForeignDomain] = {}
        self._scenes: dict[tuple[StyleRef, tuple[int, int]], _Scene] = {}

    def domain(self, k: int) -> ForeignDomain:
        if k not in self._domains:
            rng = rng_for(self.seed, TAG_DOMAIN, k)
            n_tex = int(rng.integers(1, 3))
            textures = tuple(str(t) for t in rng.choice(TEXTURES, n_tex, replace=False))
            lo = float(rng.uniform(10, 120))
            sizes = rng.choice(len(FOREIGN_SIZES), int(rng.integers(1, 4)), replace=False)
            self._domains[k] = ForeignDomain(
                palette=foreign_palette(rng),
                textures=textures,
                value_range=(lo, float(rng.uniform(lo + 60, 255))),
                spread=float(rng.uniform(0.8, 1.8)),
                quality_floor=int(rng.integers(25, 70)),
                sizes=tuple(FOREIGN_SIZES[int(i)] for i in sizes),
            )
        return self._domains[k]

    def palette_of(self, ref: StyleRef) -> Palette:
        return self.palette if ref.domain == TARGET else self.domain(ref.domain).palette

    def style(self, ref: StyleRef) -> CameraStyle:
        if ref not in self._styles:
            if ref.domain == TARGET:
                # Keyed by the camera index alone: camera 3 is the same whatever --cams says.
                rng = rng_for(self.seed, TAG_CAMERA, ref.index)
                bg = sample_background(rng, self.camera_strength)
                style = sample_camera_style(rng, self.camera_strength, bg)
            else:
                dom = self.domain(ref.domain)
                rng = rng_for(self.seed, TAG_CAMERA, 1_000_000 + ref.domain, ref.index)
                bg = sample_background(rng, 1.0, dom.textures, dom.value_range)
                style = sample_camera_style(rng, 1.0, bg, dom.spread, dom.quality_floor)
            self._styles[ref] = style
        return self._styles[ref]

    def camera(self, index: int) -> CameraStyle:
        """Target camera `index` (0-based)."""
        return self.style(StyleRef(TARGET, index))

    def _scene(self, ref: StyleRef, size: tuple[int, int]) -> _Scene:
        key = (ref, size)
        if key not in self._scenes:
            style = self.style(ref)
            ref_key = (ref.domain + 1, ref.index, *size)
            bg = render_background(style.background, size, rng_for(self.seed, TAG_BACKGROUND,
                                                                     *ref_key))
            noise = (noise_field(style.noise, size, rng_for(self.seed, TAG_NOISE, *ref_key))
                     if style.noise >= 0.5 else None)
            self._scenes[key] = _Scene(style, bg, noise, tone_lut(style))
        return self._scenes[key]

    def render(self, job: RenderJob) -> tuple[Image.Image, int]:
        """The image for `job` and the JPEG quality its camera saves at."""
        scene = self._scene(job.style, job.size)
        rng = rng_for(self.seed, TAG_IMAGE, *job.key)
        h, w = job.size
        bw, bh = scene.background.size
        x0, y0 = int(rng.integers(bw - w + 1)), int(rng.integers(bh - h + 1))
        img = scene.background.crop((x0, y0, x0 + w, y0 + h))
        # Drawn even when unused so --occlusion never changes the rest of an image.
        occluded = rng.random() < job.occlusion
        occluder_rng = np.random.default_rng(int(rng.integers(2**63)))
        if job.person is not None:
            shot = sample_shot(rng, scene.style.back_view, job.fragment)
            draw_person(img, job.person, shot)
            if shot.mirror:
                img = mirror(img)
        if occluded:
            draw_occluder(img, occluder_rng)
        img = apply_camera(img, scene.style, scene.lut, scene.noise, rng)
        return img, scene.style.jpeg_quality
