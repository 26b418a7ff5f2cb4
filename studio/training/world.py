"""The procedural world the bundled model learns to draw.

A scene is a subject of some colour in a place at a time of day, e.g. "a red car on a
mountain road at sunset". Every scene is rendered with numpy/Pillow from a seeded
random layout (subject size, position, facing; horizon height; scenery placement), so
the same caption has many different pictures. A fixed set of (subject, colour, place)
triples is held out of training at every time of day; the evaluation uses them to
measure whether the model composes attributes rather than recalls combinations.

To retrain on your own world, change the attribute tables and the ``_draw_*``
functions; everything downstream (vocabulary, captions, training, evaluation) reads
from ``ATTRIBUTES``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SUBJECTS = ("car", "house", "tree", "boat", "balloon")
COLOURS = ("red", "blue", "green", "yellow", "purple")
PLACES = ("mountain road", "beach", "city", "forest", "desert")
TIMES = ("dawn", "noon", "sunset", "night")

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "subject": SUBJECTS,
    "colour": COLOURS,
    "place": PLACES,
    "time": TIMES,
}

COLOUR_RGB = {
    "red": (220, 30, 30),
    "blue": (30, 70, 235),
    "green": (40, 200, 40),
    "yellow": (250, 225, 20),
    "purple": (150, 40, 200),
}

PLACE_PHRASES = {
    "mountain road": ("on a mountain road", "on the mountain road", "on a road in the mountains"),
    "beach": ("on the beach", "on a beach", "by the sea"),
    "city": ("in the city", "in a city", "in the town"),
    "forest": ("in the forest", "in a forest", "in the woods"),
    "desert": ("in the desert", "in a desert", "in the dunes"),
}
TIME_PHRASES = {
    "dawn": ("at dawn", "at sunrise", "in the early morning"),
    "noon": ("at noon", "at midday", "in the afternoon"),
    "sunset": ("at sunset", "at dusk", "in the evening"),
    "night": ("at night", "at midnight", "under the moon"),
}
TEMPLATES = (
    "a {colour} {subject} {place} {time}",
    "a {colour} {subject} {place} {time}",
    "{time}, a {colour} {subject} {place}",
    "a photo of a {colour} {subject} {place} {time}",
    "a picture of a {colour} {subject} {place} {time}",
    "{place}, a {colour} {subject} {time}",
    "a {colour} {subject}, {place}, {time}",
)
IMAGE_SIZE = 64


@dataclass(frozen=True)
class Scene:
    """One combination of attribute values."""

    subject: str
    colour: str
    place: str
    time: str

    def caption(self, rng: random.Random | None = None) -> str:
        """A caption for this scene; with ``rng`` the phrasing varies, without it it is canonical."""
        if rng is None:
            return f"a {self.colour} {self.subject} {PLACE_PHRASES[self.place][0]} {TIME_PHRASES[self.time][0]}"
        template = rng.choice(TEMPLATES)
        return template.format(
            colour=self.colour,
            subject=self.subject,
            place=rng.choice(PLACE_PHRASES[self.place]),
            time=rng.choice(TIME_PHRASES[self.time]),
        )

    def labels(self) -> tuple[int, int, int, int]:
        """Class indices in the order of ``ATTRIBUTES``."""
        return (
            SUBJECTS.index(self.subject),
            COLOURS.index(self.colour),
            PLACES.index(self.place),
            TIMES.index(self.time),
        )


def all_scenes() -> list[Scene]:
    return [Scene(*combo) for combo in itertools.product(SUBJECTS, COLOURS, PLACES, TIMES)]


def held_out_triples(count: int = 12, seed: int = 1234) -> frozenset[tuple[str, str, str]]:
    """(subject, colour, place) triples never shown in training, at any time of day.

    Chosen so that every subject, colour and place value still appears in training
    with many partners. The demo prompt ("a red car on a mountain road ...") stays in training.
    """
    triples = list(itertools.product(SUBJECTS, COLOURS, PLACES))
    rng = random.Random(seed)
    rng.shuffle(triples)
    chosen: list[tuple[str, str, str]] = []
    for triple in triples:
        if triple == ("car", "red", "mountain road"):
            continue
        chosen.append(triple)
        if len(chosen) == count:
            break
    return frozenset(chosen)


def is_held_out(scene: Scene) -> bool:
    return (scene.subject, scene.colour, scene.place) in held_out_triples()


def training_scenes() -> list[Scene]:
    return [s for s in all_scenes() if not is_held_out(s)]


def held_out_scenes() -> list[Scene]:
    return [s for s in all_scenes() if is_held_out(s)]


# ---------------------------------------------------------------- rendering

_SKY = {
    "dawn": ((120, 110, 190), (255, 170, 140)),
    "noon": ((40, 120, 230), (150, 205, 255)),
    "sunset": ((90, 30, 90), (255, 110, 30)),
    "night": ((5, 5, 25), (20, 30, 70)),
}
# Ground lighting per time of day: the scenery is multiplied by this tint.
_LIGHT = {
    "dawn": (0.95, 0.85, 0.9),
    "noon": (1.0, 1.0, 1.0),
    "sunset": (1.0, 0.7, 0.5),
    "night": (0.3, 0.3, 0.45),
}


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _lit(rgb, time: str) -> tuple[int, int, int]:
    return tuple(int(min(255, c * k)) for c, k in zip(rgb, _LIGHT[time], strict=True))


def _jitter(rgb, rng: random.Random, amount: int = 18) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _draw_sky(
    draw: ImageDraw.ImageDraw, s: int, horizon: int, time: str, rng: random.Random
) -> None:
    top, bottom = (_jitter(c, rng, 12) for c in _SKY[time])
    for y in range(horizon + 1):
        draw.line([(0, y), (s, y)], fill=_mix(top, bottom, y / max(1, horizon)))
    if time == "night":
        for _ in range(rng.randint(8, 20)):
            x, y = rng.randrange(s), rng.randrange(max(1, horizon - 4))
            draw.point((x, y), fill=(230, 230, 230))
        r = s * rng.uniform(0.05, 0.08)
        cx, cy = rng.uniform(0.1, 0.9) * s, rng.uniform(0.08, 0.25) * s
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(240, 240, 210))
    elif time == "noon":
        r = s * rng.uniform(0.06, 0.09)
        cx, cy = rng.uniform(0.1, 0.9) * s, rng.uniform(0.06, 0.2) * s
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 250, 200))
    else:
        r = s * rng.uniform(0.09, 0.13)
        cx, cy = rng.uniform(0.1, 0.9) * s, horizon
        sun = (255, 230, 120) if time == "dawn" else (255, 150, 40)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=sun)


def _draw_place(
    draw: ImageDraw.ImageDraw, s: int, horizon: int, place: str, time: str, rng: random.Random
) -> None:
    def lit(rgb):
        return _lit(_jitter(rgb, rng, 10), time)

    if place == "mountain road":
        for _ in range(rng.randint(2, 3)):
            cx, w = rng.uniform(0, s), rng.uniform(0.3, 0.5) * s
            peak = horizon - rng.uniform(0.2, 0.35) * s
            draw.polygon(
                [(cx - w, horizon), (cx, peak), (cx + w, horizon)], fill=lit((110, 100, 110))
            )
            draw.polygon(
                [
                    (cx - w * 0.25, peak + (horizon - peak) * 0.25),
                    (cx, peak),
                    (cx + w * 0.25, peak + (horizon - peak) * 0.25),
                ],
                fill=lit((245, 245, 250)),
            )
        draw.rectangle([0, horizon, s, s], fill=lit((70, 120, 60)))
        top = horizon + (s - horizon) * 0.45
        draw.rectangle([0, top, s, s], fill=lit((60, 60, 65)))
        mid = (top + s) / 2
        for x in range(rng.randrange(8), s, 16):
            draw.rectangle([x, mid - 1, x + 8, mid + 1], fill=lit((240, 220, 60)))
    elif place == "beach":
        sea_bottom = horizon + (s - horizon) * 0.4
        draw.rectangle([0, horizon, s, sea_bottom], fill=lit((20, 110, 190)))
        for _ in range(4):
            y = rng.uniform(horizon + 2, sea_bottom - 2)
            x = rng.uniform(0, s)
            draw.line([(x, y), (x + 10, y)], fill=lit((200, 230, 255)), width=1)
        draw.rectangle([0, sea_bottom, s, s], fill=lit((235, 215, 150)))
    elif place == "city":
        draw.rectangle([0, horizon, s, s], fill=lit((90, 90, 95)))
        x = rng.uniform(-8, 0)
        while x < s:
            w = rng.uniform(0.1, 0.2) * s
            h = rng.uniform(0.25, 0.55) * s
            grey = rng.randint(90, 150)
            draw.rectangle(
                [x, horizon - h, x + w - 1, horizon + 2], fill=lit((grey, grey, grey + 10))
            )
            window = (255, 230, 120) if time == "night" else lit((180, 210, 230))
            for wy in np.arange(horizon - h + 3, horizon - 2, 6):
                for wx in np.arange(x + 2, x + w - 3, 5):
                    draw.rectangle([wx, wy, wx + 1, wy + 2], fill=window)
            x += w
    elif place == "forest":
        draw.rectangle([0, horizon, s, s], fill=lit((30, 90, 30)))
        for _ in range(rng.randint(7, 11)):
            cx = rng.uniform(0, s)
            h = rng.uniform(0.25, 0.45) * s
            w = h * rng.uniform(0.3, 0.45)
            base = horizon + rng.uniform(0, 6)
            draw.polygon(
                [(cx - w, base), (cx, base - h), (cx + w, base)],
                fill=lit((20, 100 + rng.randint(-20, 20), 35)),
            )
    elif place == "desert":
        draw.rectangle([0, horizon, s, s], fill=lit((225, 170, 90)))
        for _ in range(3):
            cx, w, h = rng.uniform(0, s), rng.uniform(0.3, 0.6) * s, rng.uniform(0.08, 0.15) * s
            draw.ellipse([cx - w, horizon - h, cx + w, horizon + h], fill=lit((210, 150, 70)))
        for _ in range(rng.randint(1, 2)):
            cx, base = rng.uniform(0, s), rng.uniform(horizon + 4, s - 2)
            h = rng.uniform(0.12, 0.2) * s
            green = lit((40, 130, 50))
            draw.rectangle([cx - 1.5, base - h, cx + 1.5, base], fill=green)
            draw.rectangle([cx - 5, base - h * 0.65, cx - 3, base - h * 0.3], fill=green)
            draw.rectangle([cx - 5, base - h * 0.35, cx, base - h * 0.3], fill=green)
    else:
        raise ValueError(f"unknown place {place!r}")


def _draw_subject(
    draw: ImageDraw.ImageDraw,
    s: int,
    horizon: int,
    subject: str,
    colour: str,
    time: str,
    rng: random.Random,
) -> None:
    # The subject stays bright at every time of day so its colour remains readable.
    base = COLOUR_RGB[colour]
    if time == "night":
        base = tuple(int(c * 0.85) for c in base)
    body = _jitter(base, rng, 12)
    dark = tuple(int(c * 0.55) for c in body)
    outline = (15, 15, 15)
    size = rng.uniform(0.42, 0.62) * s
    flip = rng.random() < 0.5

    def pts(points, cx, by):
        # Points are in units of size, x relative to centre, y upward from the base.
        out = []
        for x, y in points:
            out.append((cx + (-x if flip else x) * size, by - y * size))
        return out

    cx = rng.uniform(0.3, 0.7) * s
    if subject == "car":
        by = rng.uniform(max(horizon + 0.2 * s, 0.72 * s), 0.95 * s)
        draw.polygon(
            pts([(-0.5, 0.1), (0.5, 0.1), (0.5, 0.35), (-0.5, 0.35)], cx, by),
            fill=body,
            outline=outline,
        )
        draw.polygon(
            pts([(-0.3, 0.35), (0.2, 0.35), (0.1, 0.58), (-0.22, 0.58)], cx, by),
            fill=body,
            outline=outline,
        )
        draw.polygon(
            pts([(-0.24, 0.38), (0.14, 0.38), (0.07, 0.53), (-0.18, 0.53)], cx, by),
            fill=(170, 210, 235),
        )
        for wx in (-0.3, 0.3):
            (x0, y0), (x1, y1) = pts([(wx - 0.11, 0.21), (wx + 0.11, -0.01)], cx, by)
            draw.ellipse(
                [min(x0, x1), y0, max(x0, x1), y1], fill=(20, 20, 20), outline=(90, 90, 90)
            )
    elif subject == "house":
        by = rng.uniform(max(horizon + 0.12 * s, 0.7 * s), 0.95 * s)
        size *= 0.95
        draw.polygon(
            pts([(-0.35, 0), (0.35, 0), (0.35, 0.5), (-0.35, 0.5)], cx, by),
            fill=body,
            outline=outline,
        )
        draw.polygon(
            pts([(-0.45, 0.5), (0.45, 0.5), (0, 0.85)], cx, by), fill=dark, outline=outline
        )
        draw.polygon(
            pts([(-0.08, 0), (0.08, 0), (0.08, 0.25), (-0.08, 0.25)], cx, by), fill=(70, 40, 20)
        )
        draw.polygon(
            pts([(0.15, 0.28), (0.28, 0.28), (0.28, 0.4), (0.15, 0.4)], cx, by),
            fill=(180, 220, 240),
        )
    elif subject == "tree":
        by = rng.uniform(max(horizon + 0.1 * s, 0.75 * s), 0.97 * s)
        size *= 1.05
        draw.polygon(
            pts([(-0.08, 0), (0.08, 0), (0.08, 0.4), (-0.08, 0.4)], cx, by),
            fill=(100, 60, 25),
            outline=outline,
        )
        (x0, y0), (x1, y1) = pts([(-0.42, 0.85), (0.42, 0.3)], cx, by)
        draw.ellipse([min(x0, x1), y0, max(x0, x1), y1], fill=body, outline=outline)
    elif subject == "boat":
        by = rng.uniform(max(horizon + 0.15 * s, 0.75 * s), 0.95 * s)
        draw.polygon(
            pts([(-0.5, 0.22), (0.5, 0.22), (0.35, 0), (-0.35, 0)], cx, by),
            fill=body,
            outline=outline,
        )
        draw.polygon(
            pts([(0.0, 0.22), (0.03, 0.22), (0.03, 0.85), (0.0, 0.85)], cx, by), fill=(90, 60, 30)
        )
        draw.polygon(
            pts([(0.05, 0.28), (0.05, 0.82), (0.4, 0.28)], cx, by),
            fill=(245, 245, 245),
            outline=outline,
        )
        draw.polygon(
            pts([(-0.03, 0.3), (-0.03, 0.7), (-0.32, 0.3)], cx, by), fill=body, outline=outline
        )
    elif subject == "balloon":
        size *= 0.9
        by = rng.uniform(0.5 * s, 0.75 * s)
        (x0, y0), (x1, y1) = pts([(-0.28, 1.05), (0.28, 0.3)], cx, by)
        draw.ellipse([min(x0, x1), y0, max(x0, x1), y1], fill=body, outline=outline)
        draw.polygon(pts([(-0.2, 0.4), (0.2, 0.4), (0.08, 0.2), (-0.08, 0.2)], cx, by), fill=body)
        for x0_, x1_ in ((-0.08, -0.06), (0.08, 0.06)):
            draw.line(pts([(x0_, 0.2), (x1_, 0.1)], cx, by), fill=(60, 40, 20), width=1)
        draw.polygon(
            pts([(-0.08, 0.1), (0.08, 0.1), (0.08, 0), (-0.08, 0)], cx, by),
            fill=(130, 80, 30),
            outline=outline,
        )
    else:
        raise ValueError(f"unknown subject {subject!r}")


def render(scene: Scene, seed: int, size: int = IMAGE_SIZE, supersample: int = 2) -> np.ndarray:
    """Render ``scene`` with the layout drawn from ``seed``; returns uint8 HxWx3."""
    rng = random.Random(seed)
    s = size * supersample
    image = Image.new("RGB", (s, s))
    draw = ImageDraw.Draw(image)
    horizon = int(rng.uniform(0.45, 0.62) * s)
    _draw_sky(draw, s, horizon, scene.time, rng)
    _draw_place(draw, s, horizon, scene.place, scene.time, rng)
    _draw_subject(draw, s, horizon, scene.subject, scene.colour, scene.time, rng)
    if supersample > 1:
        image = image.resize((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def sample_dataset(
    count: int, seed: int, scenes: list[Scene] | None = None
) -> tuple[np.ndarray, list[Scene]]:
    """Render ``count`` random scenes (by default only training scenes) into one uint8 array NxHxWx3."""
    scenes = training_scenes() if scenes is None else scenes
    rng = random.Random(seed)
    chosen = [rng.choice(scenes) for _ in range(count)]
    images = np.stack([render(scene, seed * 1_000_003 + i) for i, scene in enumerate(chosen)])
    return images, chosen
