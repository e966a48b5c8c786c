"""Camera styles: the photometric signature and the scenery that belong to one camera."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from reidcli.data.synth.common import RGB, clamp_rgb

TEXTURES = ("plain", "tiles", "pillars", "foliage", "stripes")
NEUTRAL_BACKGROUND = (118, 118, 112)

# Blur radii are calibrated for 128 px tall images and scaled with the image height, so a
# camera looks equally soft at any --size.
REFERENCE_HEIGHT = 128.0


@dataclass(frozen=True, slots=True)
class Background:
    """A camera's scenery: a wall above a horizon, a floor below, and a texture kind."""

    wall: RGB
    floor: RGB
    accent: RGB
    horizon: float
    texture: str
    period: float


@dataclass(frozen=True, slots=True)
class CameraStyle:
    """What one camera does to every image it takes. Fields are final (strength applied)."""

    gains: tuple[float, float, float]
    offset: float
    saturation: float
    contrast: float
    gamma: float
    blur: float
    noise: float
    jpeg_quality: int
    back_view: float
    background: Background


def _lerp_rgb(a: RGB, b: RGB, t: float) -> RGB:
    return clamp_rgb(tuple(x + t * (y - x) for x, y in zip(a, b, strict=True)))


def sample_background(
    rng: np.random.Generator, strength: float, textures: tuple[str, ...] = TEXTURES,
    value_range: tuple[float, float] = (40.0, 220.0),
) -> Background:
    """Scenery colours pulled towards a neutral grey as the camera strength goes to 0."""
    t = min(max(strength, 0.0), 1.0)
    lo, hi = value_range

    def colour() -> RGB:
        # Streets and walls are mostly greys with a tint, not saturated paint.
        tinted = rng.uniform(lo, hi) + rng.normal(0.0, 22.0, 3)
        return _lerp_rgb(NEUTRAL_BACKGROUND, clamp_rgb(tinted), t)

    return Background(
        wall=colour(), floor=colour(), accent=colour(),
        horizon=float(rng.uniform(0.35, 0.75)),
        texture=str(textures[int(rng.integers(len(textures)))]),
        period=float(rng.uniform(0.08, 0.3)),
    )


def sample_camera_style(
    rng: np.random.Generator, strength: float, background: Background,
    spread: float = 1.0, quality_floor: int = 55,
) -> CameraStyle:
    """Draw a camera. `strength` scales every deviation from a neutral camera.

    The raw draws do not depend on `strength`, so the same camera at strength 2 is the
    same camera at strength 1, only more so - what a camera-bias study needs.
    """
    s = max(strength, 0.0) * spread
    log_gains = rng.normal(0.0, 0.07, 3)
    offset = rng.normal(0.0, 9.0)
    log_sat = rng.normal(0.0, 0.15)
    log_contrast = rng.normal(0.0, 0.1)
    log_gamma = rng.normal(0.0, 0.1)
    blur = rng.uniform(0.0, 1.0)
    noise = rng.uniform(0.0, 6.0)
    quality = rng.uniform(quality_floor, 95.0)
    back_view = rng.uniform(0.15, 0.85)
    g = np.exp(s * log_gains)
    return CameraStyle(
        gains=(float(g[0]), float(g[1]), float(g[2])),
        offset=float(s * offset),
        saturation=float(np.exp(s * log_sat)),
        contrast=float(np.exp(s * log_contrast)),
        gamma=float(np.exp(s * log_gamma)),
        blur=float(s * blur),
        noise=float(s * noise),
        jpeg_quality=int(round(min(95.0, max(20.0, 95.0 - s * (95.0 - quality))))),
        back_view=float(back_view),
        background=background,
    )


def render_background(
    bg: Background, size: tuple[int, int], rng: np.random.Generator
) -> Image.Image:
    """A scenery texture larger than one image; each image crops it at a random offset."""
    h, w = size
    th, tw = h + h // 2, 2 * w
    y = np.arange(th, dtype=np.float32)[:, None] / h
    x = np.arange(tw, dtype=np.float32)[None, :] / h
    wall, floor, accent = (np.asarray(c, np.float32) for c in (bg.wall, bg.floor, bg.accent))
    # A soft horizon and a vertical light gradient keep the scene from being flat colour.
    horizon = 1.0 / (1.0 + np.exp(-(y - bg.horizon * th / h) * 25.0))
    img = wall * (1.0 - horizon[..., None]) + floor * horizon[..., None]
    img *= (0.85 + 0.3 * (1.0 - y / y.max()))[..., None]
    img = np.broadcast_to(img, (th, tw, 3))
    p = bg.period
    if bg.texture == "tiles":
        grout = (np.abs((x / p) % 1.0 - 0.5) > 0.46) | (np.abs((y / p) % 1.0 - 0.5) > 0.46)
        mask = grout & (horizon > 0.5)
    elif bg.texture == "pillars":
        mask = (((x / (p * 2.0)) % 1.0) < 0.3) & (horizon < 0.5)
    elif bg.texture == "stripes":
        mask = ((y / (p * 0.5)) % 1.0) < 0.35
    elif bg.texture == "foliage":
        coarse = rng.random((th // 6 + 2, tw // 6 + 2)).astype(np.float32)
        blobs = np.kron(coarse, np.ones((6, 6), np.float32))[:th, :tw]
        mask = blobs > 0.6
    else:
        mask = np.zeros((th, tw), bool)
    img = np.where(mask[..., None], 0.6 * img + 0.4 * accent, img)
    img += rng.normal(0.0, 4.0, (th, tw, 1)).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def noise_field(sigma: float, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Sensor noise larger than one image, stored +128 so `ImageChops.add` can apply it."""
    h, w = size
    noise = rng.normal(128.0, sigma, (2 * h, 2 * w, 3))
    return Image.fromarray(np.clip(np.round(noise), 0, 255).astype(np.uint8), "RGB")


def _colour_matrix(style: CameraStyle, light: float, shift: float) -> tuple[float, ...]:
    # Saturation mixes each channel with luma; gains tint; the fourth column adds brightness.
    lum = (0.299, 0.587, 0.114)
    s = style.saturation
    rows: list[float] = []
    for c in range(3):
        g = style.gains[c] * light
        row = [g * ((1.0 - s) * lum[k] + (s if k == c else 0.0)) for k in range(3)]
        rows.extend([*row, style.offset + shift])
    return tuple(rows)


def tone_lut(style: CameraStyle) -> np.ndarray:
    """Contrast around mid-grey, then gamma, as a 256-entry uint8 table."""
    v = np.arange(256, dtype=np.float64) / 255.0
    v = np.clip(0.5 + (v - 0.5) * style.contrast, 0.0, 1.0) ** style.gamma
    return np.round(v * 255.0).astype(np.uint8)


def apply_camera(
    img: Image.Image, style: CameraStyle, lut: np.ndarray, noise: Image.Image | None,
    rng: np.random.Generator,
) -> Image.Image:
    """Photometric camera effects plus a little per-frame lighting change.

    Order as in a camera: colour response, lens blur, tone curve, sensor noise.
    """
    light = float(np.exp(rng.normal(0.0, 0.06)))
    shift = float(rng.normal(0.0, 5.0))
    img = img.convert("RGB", _colour_matrix(style, light, shift))
    radius = style.blur * img.height / REFERENCE_HEIGHT
    if radius > 0.15:
        # A fractional box blur: at these radii it is a soft 3-5 tap kernel, and it costs a
        # third of Pillow's 3-pass Gaussian, which dominated the generation time.
        img = img.filter(ImageFilter.BoxBlur(radius))
    img = Image.fromarray(np.take(lut, np.asarray(img)), "RGB")
    if noise is not None:
        h, w = img.height, img.width
        y0 = int(rng.integers(noise.height - h + 1))
        x0 = int(rng.integers(noise.width - w + 1))
        img = ImageChops.add(img, noise.crop((x0, y0, x0 + w, y0 + h)), 1.0, -128)
    return img
