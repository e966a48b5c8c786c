"""Drawing: a person (front or back view) with its clothes and bag, and random occluders.

Geometry lives in "body units": y runs from 0 at the top of the head to 1 at the soles,
x is centred on the body axis and measured in the same unit. `_Canvas` maps body units to
pixels once per image, so every part below is a handful of PIL polygon calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from reidcli.data.synth.common import RGB, clamp_rgb
from reidcli.data.synth.identity import Identity

Point = tuple[float, float]

SHOULDER_Y, WAIST_Y, HIP_Y, ANKLE_Y = 0.155, 0.47, 0.52, 0.95
SHOULDER_W, WAIST_W = 0.105, 0.085
HIP_X = 0.045


@dataclass(frozen=True, slots=True)
class Shot:
    """How a person appears in one image: view side, pose and the detector's framing."""

    back: bool
    mirror: bool
    stride: float
    swing: float
    scale: float
    dx: float
    dy: float


def sample_shot(rng: np.random.Generator, back_view: float, fragment: bool = False) -> Shot:
    """A shot; `fragment` frames it like a bad detection (zoomed in on part of a body)."""
    if fragment:
        scale = float(rng.uniform(1.4, 2.6))
        dx, dy = float(rng.uniform(-0.45, 0.45)), float(rng.uniform(-0.7, 0.2))
    else:
        # Detector misalignment: boxes shift by a few percent and cut heads or feet at times.
        scale = float(rng.uniform(0.86, 1.06))
        dx = float(np.clip(rng.normal(0.0, 0.06), -0.18, 0.18))
        dy = float(np.clip(rng.normal(0.0, 0.035), -0.09, 0.09))
    return Shot(
        back=bool(rng.random() < back_view),
        mirror=bool(rng.random() < 0.5),
        stride=float(rng.uniform(0.0, 0.055)),
        swing=float(rng.uniform(-0.05, 0.05)),
        scale=scale, dx=dx, dy=dy,
    )


class _Canvas:
    def __init__(self, img: Image.Image, person: Identity, shot: Shot) -> None:
        self.draw = ImageDraw.Draw(img)
        h, w = img.height, img.width
        self.unit = h * 0.94 * person.height * shot.scale
        self.top = (h - self.unit) * 0.5 + shot.dy * h
        self.cx = w * 0.5 + shot.dx * w
        # Body units are narrow; 1.15 makes an average person fill a 2:1 box like Market's.
        self.wf = person.width * 1.15

    def pt(self, x: float, y: float) -> Point:
        return (self.cx + x * self.unit * self.wf, self.top + y * self.unit)

    def poly(self, pts: list[Point], fill: RGB) -> None:
        self.draw.polygon([self.pt(x, y) for x, y in pts], fill=fill)

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: RGB) -> None:
        x0, y0 = self.pt(x - rx, y - ry)
        x1, y1 = self.pt(x + rx, y + ry)
        self.draw.ellipse((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), fill=fill)

    def limb(self, p0: Point, p1: Point, w0: float, w1: float, fill: RGB,
             t0: float = 0.0, t1: float = 1.0) -> None:
        """The part t0..t1 of a tapered limb from p0 to p1 (half widths w0, w1)."""
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        norm = max((dx * dx + dy * dy) ** 0.5, 1e-6)
        nx, ny = -dy / norm, dx / norm
        pts = []
        for t, sign in ((t0, 1), (t1, 1), (t1, -1), (t0, -1)):
            hw = (w0 + (w1 - w0) * t) * sign
            pts.append((x0 + dx * t + nx * hw, y0 + dy * t + ny * hw))
        self.poly(pts, fill)


def _torso_half_width(y: float) -> float:
    t = (y - SHOULDER_Y) / (WAIST_Y - SHOULDER_Y)
    return SHOULDER_W + (WAIST_W - SHOULDER_W) * min(max(t, 0.0), 1.0)


def _torso_band(c: _Canvas, y0: float, y1: float, fill: RGB) -> None:
    w0, w1 = _torso_half_width(y0), _torso_half_width(y1)
    c.poly([(-w0, y0), (w0, y0), (w1, y1), (-w1, y1)], fill)


def _draw_legs(c: _Canvas, p: Identity, shot: Shot) -> None:
    legs = [((-HIP_X, HIP_Y), (-HIP_X - shot.stride, ANKLE_Y)),
            ((HIP_X, HIP_Y), (HIP_X + shot.stride * 0.6, ANKLE_Y))]
    cover = {"trousers": 1.0, "shorts": 0.35, "skirt": 0.0}[p.lower_kind]
    for top, ankle in legs:
        c.limb(top, ankle, 0.05, 0.036, p.skin)
        if cover > 0:
            c.limb(top, ankle, 0.051, 0.037, p.lower, 0.0, cover)
            if p.lower_pattern == "checks":
                for t in np.arange(0.08, cover - 0.04, 0.14):
                    c.limb(top, ankle, 0.052, 0.038, p.lower_second, float(t), float(t) + 0.05)
            elif p.lower_pattern == "stripes":
                side = 1.0 if top[0] > 0 else -1.0
                outer = (top[0] + side * 0.04, top[1])
                c.limb(outer, (ankle[0] + side * 0.028, ankle[1]), 0.01, 0.008,
                       p.lower_second, 0.0, cover)
        c.ellipse(ankle[0], 0.972, 0.04, 0.026, p.shoes)
    if p.lower_kind == "skirt":
        c.poly([(-WAIST_W, WAIST_Y), (WAIST_W, WAIST_Y), (0.145, 0.72), (-0.145, 0.72)], p.lower)
        if p.lower_pattern != "solid":
            c.poly([(-0.13, 0.66), (0.13, 0.66), (0.14, 0.69), (-0.14, 0.69)], p.lower_second)
    else:
        c.poly([(-WAIST_W, WAIST_Y), (WAIST_W, WAIST_Y), (0.095, 0.6), (-0.095, 0.6)], p.lower)


def _draw_torso(c: _Canvas, p: Identity, shot: Shot) -> None:
    _torso_band(c, SHOULDER_Y, WAIST_Y + 0.03, p.upper)
    if p.upper_pattern in ("stripes", "checks"):
        period = 0.05 if p.upper_pattern == "stripes" else 0.07
        for y in np.arange(SHOULDER_Y + 0.035, WAIST_Y, period):
            _torso_band(c, float(y), float(y) + 0.018, p.upper_second)
        if p.upper_pattern == "checks":
            for x in (-0.06, -0.02, 0.02, 0.06):
                c.poly([(x - 0.008, SHOULDER_Y), (x + 0.008, SHOULDER_Y),
                        (x + 0.008, WAIST_Y), (x - 0.008, WAIST_Y)], p.upper_second)
    elif p.upper_pattern == "logo" and not shot.back:
        c.ellipse(0.0, 0.27, 0.038, 0.03, p.upper_second)


def _draw_arms(c: _Canvas, p: Identity, shot: Shot) -> None:
    for side, swing in ((-1.0, shot.swing), (1.0, -shot.swing)):
        shoulder = (side * 0.112, SHOULDER_Y + 0.015)
        hand = (side * 0.135 + swing, 0.5)
        c.limb(shoulder, hand, 0.03, 0.022, p.skin)
        c.limb(shoulder, hand, 0.031, 0.023, p.upper, 0.0, 1.0 if p.sleeves == "long" else 0.4)
        c.ellipse(hand[0], hand[1] + 0.015, 0.022, 0.022, p.skin)


def _draw_bag(c: _Canvas, p: Identity, shot: Shot) -> None:
    # The person's right side is the image's left when they face the camera.
    side = float(p.bag_side) * (1.0 if shot.back else -1.0)
    if p.bag == "backpack":
        if shot.back:
            c.poly([(-0.08, 0.19), (0.08, 0.19), (0.085, 0.42), (-0.085, 0.42)], p.bag_colour)
        else:
            for sx in (-1.0, 1.0):
                c.limb((sx * 0.07, SHOULDER_Y), (sx * 0.075, 0.36), 0.014, 0.012, p.bag_colour)
    elif p.bag == "handbag":
        x = side * 0.145
        c.poly([(x - 0.035, 0.5), (x + 0.035, 0.5), (x + 0.04, 0.6), (x - 0.04, 0.6)],
               p.bag_colour)
    elif p.bag == "shoulder":
        c.limb((-side * 0.08, SHOULDER_Y), (side * 0.11, 0.44), 0.009, 0.009, p.bag_colour)
        x = side * 0.115
        c.poly([(x - 0.045, 0.43), (x + 0.045, 0.43), (x + 0.045, 0.53), (x - 0.045, 0.53)],
               p.bag_colour)


def _draw_head(c: _Canvas, p: Identity, shot: Shot) -> None:
    c.poly([(-0.02, 0.11), (0.02, 0.11), (0.02, SHOULDER_Y + 0.01), (-0.02, SHOULDER_Y + 0.01)],
           p.skin)
    if shot.back:
        c.ellipse(0.0, 0.072, 0.05, 0.064, p.hair)
        if p.hair_long:
            c.poly([(-0.05, 0.08), (0.05, 0.08), (0.045, 0.25), (-0.045, 0.25)], p.hair)
        return
    if p.hair_long:
        # Only the strands beside the face show from the front.
        for sx in (-1.0, 1.0):
            c.poly([(sx * 0.028, 0.05), (sx * 0.058, 0.05), (sx * 0.055, 0.21),
                    (sx * 0.03, 0.21)], p.hair)
    c.ellipse(0.0, 0.075, 0.047, 0.062, p.skin)
    x0, y0 = c.pt(-0.052, 0.005)
    x1, y1 = c.pt(0.052, 0.1)
    c.draw.chord((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), 180, 360, fill=p.hair)


def draw_person(img: Image.Image, person: Identity, shot: Shot) -> None:
    """Draw `person` onto `img` in place (before any mirroring)."""
    c = _Canvas(img, person, shot)
    _draw_legs(c, person, shot)
    if not shot.back and person.bag == "backpack":
        # Seen from the front, a backpack only peeks out beside the torso.
        c.poly([(-0.12, 0.2), (0.12, 0.2), (0.12, 0.4), (-0.12, 0.4)], person.bag_colour)
    _draw_torso(c, person, shot)
    _draw_arms(c, person, shot)
    _draw_bag(c, person, shot)
    _draw_head(c, person, shot)


def draw_occluder(img: Image.Image, rng: np.random.Generator) -> None:
    """Something between the camera and the person: a pole, a car, a sign or a passer-by."""
    draw = ImageDraw.Draw(img)
    h, w = img.height, img.width
    colour = clamp_rgb(rng.uniform(20, 235, 3))
    kind = int(rng.integers(4))
    if kind == 0:
        bw = rng.uniform(0.1, 0.25) * w
        x = rng.uniform(-0.1, 0.9) * w
        draw.rectangle((x, 0, x + bw, h), fill=colour)
    elif kind == 1:
        top = h * (1.0 - rng.uniform(0.2, 0.5))
        x0 = rng.uniform(-0.5, 0.3) * w
        draw.rounded_rectangle((x0, top, x0 + rng.uniform(0.8, 1.5) * w, h + 10),
                               radius=max(1, w // 10), fill=colour)
    elif kind == 2:
        bottom = h * rng.uniform(0.15, 0.35)
        x0 = rng.uniform(0.0, 0.5) * w
        draw.rectangle((x0, -1, x0 + rng.uniform(0.4, 0.9) * w, bottom), fill=colour)
    else:
        # A passer-by's shoulder and arm at one edge of the box.
        cx = -0.1 * w if rng.random() < 0.5 else 1.1 * w
        rx, ry = rng.uniform(0.25, 0.45) * w, rng.uniform(0.3, 0.5) * h
        cy = rng.uniform(0.35, 0.8) * h
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)


def mirror(img: Image.Image) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
