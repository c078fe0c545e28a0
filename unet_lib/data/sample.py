"""Procedural sample data written in the exact on-disk formats of Kaggle Carvana and Cityscapes.

Cars are small 3-D solids on a turntable, photographed from 16 angles in a grey studio; street
scenes are polygons drawn back to front, as the Cityscapes tools render their annotations.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from torchvision.datasets import Cityscapes

from unet_lib.errors import InputError
from unet_lib.rle import rle_encode

CARVANA_SIZE = (1918, 1280)  # (W, H) of the Kaggle photos
NUM_VIEWS = 16  # the turntable stops every 22.5 degrees: 01 front, 05 side, 09 back, 13 other side

# Body styles as (share, width, clearance, wheel radius, belt, roof, windshield base x, roof front x,
# roof back x, rear window base x, tail height), all in car lengths; the front is at x = +0.5.
BODY_STYLES = {
    "sedan": (0.35, 0.40, 0.035, 0.068, 0.215, 0.305, 0.20, 0.04, -0.20, -0.33, 0.225),
    "hatchback": (0.25, 0.43, 0.038, 0.072, 0.225, 0.34, 0.23, 0.07, -0.36, -0.46, 0.245),
    "suv": (0.30, 0.42, 0.055, 0.082, 0.26, 0.385, 0.25, 0.12, -0.44, -0.475, 0.285),
    "coupe": (0.10, 0.44, 0.030, 0.070, 0.200, 0.28, 0.16, -0.02, -0.14, -0.34, 0.215),
}
MAKES = {
    "sedan": [("Toyota", "Camry"), ("Honda", "Accord"), ("Ford", "Fusion"), ("Hyundai", "Sonata")],
    "hatchback": [("Volkswagen", "Golf"), ("Mazda", "Mazda3"), ("Ford", "Focus"), ("Kia", "Rio")],
    "suv": [("Toyota", "RAV4"), ("Honda", "CR-V"), ("Jeep", "Cherokee"), ("Ford", "Explorer")],
    "coupe": [("Chevrolet", "Camaro"), ("Ford", "Mustang"), ("BMW", "4 Series"), ("Audi", "A5")],
}
# Paint colours with the shares of car colours on the road: mostly white, black, grey and silver.
# fmt: off
PAINTS = [
    (0.24, (232, 233, 235)), (0.18, (22, 23, 26)), (0.14, (118, 121, 125)), (0.14, (176, 179, 183)),
    (0.09, (28, 52, 110)), (0.09, (150, 22, 28)), (0.05, (160, 140, 110)), (0.04, (40, 80, 55)),
    (0.03, (200, 160, 30)),
]
# fmt: on
# Materials: index into the per-face colour table.
PAINT, GLASS, TYRE, RIM, TRIM, HEADLIGHT, TAILLIGHT, PLATE = range(8)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per (seed, kind, item): adding items never changes earlier ones."""
    return np.random.default_rng([seed, *stream])


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise InputError(f"{name}: expected a positive integer, got {value!r}")


def _check_size(size: tuple[int, int], minimum: int = 16) -> tuple[int, int]:
    try:
        width, height = (int(n) for n in size)
    except (TypeError, ValueError):
        raise InputError(f"size: expected (width, height), got {size!r}") from None
    if width < minimum or height < minimum:
        raise InputError(f"size: expected (width, height) of at least {minimum}x{minimum} pixels, got {size!r}")
    return width, height


def _prepare_root(root: str | Path, overwrite: bool) -> Path:
    """Create ``root``, refusing to write into a non-empty folder unless told to."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder; expected a folder to write sample data into")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise InputError(f"{root}: folder is not empty; pass overwrite=True (CLI: --overwrite) to write into it anyway")
    root.mkdir(parents=True, exist_ok=True)
    return root


# ----------------------------------------------------------------------------------------- Carvana


class _Solid:
    """A car part: a side profile in (x, z) swept across y, between y = yc - hw(z) and yc + hw(z).

    Its faces are the two sides (keys "a" at -y and "b" at +y) and one quad per profile edge (key: the
    edge's index). Decorations (windows, lights, rims) are polygons drawn on a face, given in that
    face's own coordinates: (x, z) on a side, (along the edge, across the width) in [0, 1] on a quad.
    """

    def __init__(self, profile, yc, hw_bottom, hw_top, material, decorations=()):
        p = self.profile = np.asarray(profile, dtype=np.float64)  # (N, 2) counter-clockwise (x, z)
        n, z = len(p), p[:, 1]
        self.hw = hw_bottom + (hw_top - hw_bottom) * (z - z.min()) / max(np.ptp(z), 1e-9)  # narrower on top
        self.yc, self.material = yc, material
        self.vertices = np.concatenate([np.column_stack([p[:, 0], yc + s * self.hw, z]) for s in (-1, 1)])  # (2N, 3)
        self.keys = ["a", "b", *range(n)]
        self.faces = [list(range(n)), list(range(n, 2 * n))] + [
            [i, (i + 1) % n, n + (i + 1) % n, n + i] for i in range(n)
        ]
        edge = np.roll(p, -1, axis=0) - p
        outward = np.column_stack([edge[:, 1], np.zeros(n), -edge[:, 0]])  # right of travel
        outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-9)
        self.normals = np.vstack([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0], outward])  # one per face
        self.decorations = {}
        for key, polygon, decoration_material in decorations:
            vertices = self._decoration_vertices(key, np.asarray(polygon, dtype=np.float64))
            self.decorations.setdefault(key, []).append((vertices, decoration_material))

    def _decoration_vertices(self, key, polygon: np.ndarray) -> np.ndarray:
        if key in ("a", "b"):
            z = self.profile[:, 1]
            hw = np.interp(polygon[:, 1], [z.min(), z.max()], [self.hw.min(), self.hw.max()])
            return np.column_stack([polygon[:, 0], self.yc + (hw if key == "b" else -hw), polygon[:, 1]])
        i, j = key, (key + 1) % len(self.profile)
        along, across = polygon[:, :1], polygon[:, 1]
        xz = self.profile[i] + along * (self.profile[j] - self.profile[i])
        hw = self.hw[i] + along[:, 0] * (self.hw[j] - self.hw[i])
        return np.column_stack([xz[:, 0], self.yc + (2 * across - 1) * hw, xz[:, 1]])


def _arc(cx, cz, radius, start, stop, n):
    angles = np.linspace(start, stop, n)
    return np.column_stack([cx + radius * np.cos(angles), cz + radius * np.sin(angles)])


def _clip(polygon: np.ndarray, x0: float, sign: int, axis: int = 0) -> np.ndarray:
    """The part of a polygon where sign * (p[axis] - x0) >= 0 (one Sutherland-Hodgman step)."""
    kept = []
    for p, q in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        fp, fq = sign * (p[axis] - x0), sign * (q[axis] - x0)
        if fp >= 0:
            kept.append(p)
        if fp * fq < 0:
            kept.append(p + (q - p) * fp / (fp - fq))
    return np.array(kept)


def _design_car(rng: np.random.Generator) -> dict:
    """Random proportions, paint and parts of one car (lengths in car lengths, front at x = +0.5)."""
    names = list(BODY_STYLES)
    shares = np.array([BODY_STYLES[n][0] for n in names])
    style = names[rng.choice(len(names), p=shares / shares.sum())]
    _, width, clear, radius, belt, roof, ws, rf, rr, rw, tail = (
        v * rng.uniform(0.95, 1.05) for v in BODY_STYLES[style]
    )
    shares = np.array([s for s, _ in PAINTS])
    paint = np.array(PAINTS[rng.choice(len(PAINTS), p=shares / shares.sum())][1], dtype=np.float64)
    paint = np.clip(paint * rng.uniform(0.9, 1.1) + rng.normal(0, 4, 3), 0, 255)
    axle_f, axle_r = rng.uniform(0.28, 0.32), -rng.uniform(0.28, 0.33)
    nose, hood = belt - rng.uniform(0.07, 0.10), belt - rng.uniform(0.02, 0.035)
    arch = radius * 1.15
    gap = math.asin(min(0.99, (radius - clear) / arch))
    body = [(0.485, clear), (0.5, clear + 0.04), (0.5, nose), (0.49, hood), (ws, belt)]
    body += [(rw, belt + 0.01), (-0.48, tail), (-0.5, tail - 0.05), (-0.5, clear + 0.04), (-0.485, clear)]
    body += list(_arc(axle_r, radius, arch, math.pi + gap, -gap, 9))
    body += list(_arc(axle_f, radius, arch, math.pi + gap, -gap, 9))
    cabin = [(ws, belt), (rf + 0.03, roof - 0.005), (rf - 0.01, roof), (rr + 0.02, roof), (rr - 0.01, roof - 0.01)]
    cabin += [(rw, belt + 0.01)]
    half = width / 2
    body_decor = [
        (1, [(0.5, 0.3), (1, 0.3), (1, 0.7), (0.5, 0.7)], TRIM),  # grille between the headlights
        (2, [(0.1, 0.05), (0.9, 0.05), (0.9, 0.25), (0.1, 0.25)], HEADLIGHT),
        (2, [(0.1, 0.75), (0.9, 0.75), (0.9, 0.95), (0.1, 0.95)], HEADLIGHT),
        (1, [(0.1, 0.38), (0.5, 0.38), (0.5, 0.62), (0.1, 0.62)], PLATE),
        (6, [(0.3, 0.04), (1, 0.04), (1, 0.22), (0.3, 0.22)], TAILLIGHT),
        (6, [(0.3, 0.78), (1, 0.78), (1, 0.96), (0.3, 0.96)], TAILLIGHT),
        (7, [(0.3, 0.38), (0.9, 0.38), (0.9, 0.62), (0.3, 0.62)], PLATE),
    ]
    # Side windows: the cabin side, inset, split in two by the middle pillar.
    centre = np.mean(cabin, axis=0)
    window = centre + (np.array(cabin) - centre) * [0.92, 0.78]
    mid = (ws + rw) / 2 + 0.02
    panes = [_clip(window, mid + 0.012, 1), _clip(window, mid - 0.012, -1)]
    cabin_decor = [(side, pane, GLASS) for side in ("a", "b") for pane in panes if len(pane) >= 3]
    cabin_decor += [(0, [(0.06, 0.06), (0.94, 0.06), (0.94, 0.94), (0.06, 0.94)], GLASS)]  # windshield
    cabin_decor += [(len(cabin) - 2, [(0.08, 0.08), (0.92, 0.08), (0.92, 0.92), (0.08, 0.92)], GLASS)]  # rear
    solids = [
        _Solid(body, 0.0, half, half * 0.96, PAINT, body_decor),
        _Solid(cabin, 0.0, half * 0.93, half * 0.74, PAINT, cabin_decor),
    ]
    wheel = _arc(0, radius, radius, 0, 2 * math.pi, 15)[:-1]
    rim = _arc(0, radius, radius * rng.uniform(0.55, 0.7), 0, 2 * math.pi, 15)[:-1]
    tread = 0.055
    for x in (axle_f, axle_r):
        for sign, outer in ((-1, "a"), (1, "b")):
            solids.append(
                _Solid(
                    wheel + [x, 0],
                    sign * (half - tread / 2 - 0.004),
                    tread / 2,
                    tread / 2,
                    TYRE,
                    [(outer, rim + [x, 0], RIM)],
                )
            )
    mirror = [(ws - 0.01, belt + 0.005), (ws - 0.01, belt + 0.04), (ws - 0.05, belt + 0.035), (ws - 0.05, belt + 0.01)]
    for sign in (-1, 1):
        solids.append(_Solid(mirror, sign * (half + 0.012), 0.022, 0.022, PAINT))
    colours = np.zeros((8, 3))
    colours[PAINT] = paint
    colours[GLASS] = rng.uniform(18, 40) + np.array([0, 3, 8])
    colours[TYRE] = rng.uniform(22, 34)
    colours[RIM] = rng.choice([rng.uniform(150, 200), rng.uniform(40, 70)])
    colours[TRIM] = rng.uniform(15, 35)
    colours[HEADLIGHT] = rng.uniform(190, 230)
    colours[TAILLIGHT] = [rng.uniform(120, 170), 20, 25]
    colours[PLATE] = rng.uniform(200, 235)
    make, model = MAKES[style][rng.integers(len(MAKES[style]))]
    return {
        "style": style,
        "make": make,
        "model": model,
        "year": int(rng.integers(2006, 2017)),
        "width": width,
        "solids": solids,
        "colours": colours,
        "gloss": rng.uniform(0.05, 0.25),  # extra mirror-like shine of a freshly waxed car
        "clear_glass": rng.uniform(0.2, 0.6),  # how much of the studio shows through the windows
    }


def _studio(rng: np.random.Generator, car: dict, size: tuple[int, int]) -> dict:
    """Camera and studio of one photo session: the same for all 16 views of a car."""
    width, height = size
    scale = 0.86 * min(width, 1.5 * height) * rng.uniform(0.82, 1.0)  # pixels per car length
    wall = rng.uniform(200, 242) + rng.normal(0, 3, 3)
    return {
        "size": size,
        "scale": scale,
        "elevation": math.radians(rng.uniform(8, 15)),
        "distance": rng.uniform(5, 8),  # camera distance in car lengths: mild perspective
        "centre": (width * rng.uniform(0.45, 0.55), height * rng.uniform(0.58, 0.72)),
        "offset": rng.uniform(-0.07, 0.07, 2),  # the car is never quite at the turntable's centre
        "turn": math.radians(rng.uniform(-4, 4)),
        "wall": wall,
        "floor": wall - rng.uniform(8, 40),
        "horizon": rng.uniform(0.22, 0.40),  # where the floor meets the wall, in car lengths above the centre
        "table": (rng.uniform(0.58, 0.72), rng.uniform(0.9, 1.06)),  # turntable radius, brightness
        "shadow": rng.uniform(0.5, 0.75),
        # strip lights: (height above the horizon line, half width, strength), in car lengths
        "strips": [(rng.uniform(0.0, 0.04), rng.uniform(0.006, 0.02), rng.uniform(0.5, 1.0)) for _ in range(2)],
    }


def _to_camera(points: np.ndarray, yaw: float, studio: dict) -> np.ndarray:
    """Car coordinates (x forward, y left-right, z up) -> camera (right, up, depth), in car lengths."""
    x, y, z = (points[..., i] for i in range(3))
    x, y = x + studio["offset"][0], y + studio["offset"][1]
    right = math.sin(yaw) * x + math.cos(yaw) * y
    away = -math.cos(yaw) * x + math.sin(yaw) * y
    e = studio["elevation"]
    return np.stack([right, z * math.cos(e) + away * math.sin(e), away * math.cos(e) - z * math.sin(e)], -1)


def _to_pixels(cam: np.ndarray, studio: dict) -> np.ndarray:
    """Camera coordinates -> (column, row) pixels, with perspective."""
    k = studio["scale"] * studio["distance"] / (studio["distance"] + cam[..., 2])
    cx, cy = studio["centre"]
    return np.stack([cx + k * cam[..., 0], cy - k * cam[..., 1]], -1)


LIGHT = np.array([0.25, 0.85, -0.45]) / np.linalg.norm([0.25, 0.85, -0.45])  # from above, behind the camera
GLOSS = np.array([1.0, 1.0, 0.05, 0.6, 0.2, 0.5, 0.5, 0.1])  # how mirror-like each material is
SHINY = np.array([0.95, 0.9, 0, 0, 0, 0, 0, 0], dtype=np.float32)  # lamp highlights: paint and glass only


def _car_faces(car: dict, yaw: float, studio: dict) -> list[tuple]:
    """Faces turned to the camera, far to near: (depth, pixel polygon, colour, material, reflectance, upness).

    Reflectance follows Schlick's Fresnel approximation: glossy paint seen at a grazing angle
    (the roof, the hood) mirrors the bright studio ceiling, seen head-on it shows its own colour.
    """
    eye = np.array([0.0, 0.0, -studio["distance"]])
    turn_only = dict(studio, offset=(0.0, 0.0))  # normals turn with the car but do not move
    faces = []
    for solid in car["solids"]:
        cam = _to_camera(solid.vertices, yaw, studio)  # (2N, 3)
        pixels = _to_pixels(cam, studio)
        normals = _to_camera(solid.normals, yaw, turn_only)
        for key, corners, n, normal in zip(solid.keys, solid.faces, normals, solid.normals, strict=True):
            to_eye = eye - cam[corners].mean(0)
            cos = float(np.dot(n, to_eye)) / float(np.linalg.norm(to_eye))
            if cos <= 0:
                continue  # facing away
            shade = 0.55 + 0.55 * max(0.0, float(np.dot(n, LIGHT)))
            fresnel = 0.05 + 0.95 * (1 - cos) ** 5
            depth = float(cam[corners, 2].mean())
            parts = [(pixels[corners], solid.material)]
            parts += [(_to_pixels(_to_camera(v, yaw, studio), studio), m) for v, m in solid.decorations.get(key, [])]
            for order, (polygon, material) in enumerate(parts):
                reflect = min(0.6, GLOSS[material] * (fresnel + car["gloss"]))
                colour = car["colours"][material] * shade
                up = max(0.0, float(normal[2]))
                faces.append((depth - 1e-6 * order, polygon, colour, material, reflect, up))
    faces.sort(key=lambda face: -face[0])
    return faces


def _background(rng: np.random.Generator, car: dict, yaw: float, studio: dict) -> np.ndarray:
    """Wall, floor, turntable and the car's soft shadow, drawn at 1/4 scale: (H, W, 3) uint8."""
    width, height = studio["size"]
    w, h = max(4, width // 4), max(4, height // 4)
    small = dict(
        studio,
        scale=studio["scale"] * w / width,
        centre=(studio["centre"][0] * w / width, studio["centre"][1] * h / height),
    )
    cx, cy = small["centre"]
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    horizon = cy - small["scale"] * studio["horizon"]
    floor = 1 / (1 + np.exp(-(rows - horizon) / (0.04 * small["scale"])))  # (h, 1): 0 on the wall, 1 on the floor
    light = 1 - 0.12 * (((cols - cx) / w) ** 2 + ((rows - 0.3 * h) / h) ** 2) * 4  # (h, w): lit from above
    grain = Image.fromarray(rng.normal(0, 1, (h // 16 + 3, w // 16 + 3)).astype(np.float32), "F")
    grain = np.asarray(grain.resize((w, h), Image.BICUBIC))  # (h, w) blotchy, low frequency
    layers = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layers)
    radius, brightness = studio["table"]
    ring = np.column_stack([_arc(0, 0, radius, 0, 2 * math.pi, 48), np.zeros(48)])  # on the floor, around the centre
    ring = _to_pixels(_to_camera(ring, 0.0, dict(small, offset=(0, 0))), small)
    draw.polygon([tuple(p) for p in ring], fill=1)
    table = np.asarray(layers, dtype=np.float32)
    shadow_img = Image.new("L", (w, h), 0)
    half = car["width"] / 2 + 0.04
    footprint = np.array([[0.55, -half, 0], [0.55, half, 0], [-0.55, half, 0], [-0.55, -half, 0]])
    ImageDraw.Draw(shadow_img).polygon(
        [tuple(p) for p in _to_pixels(_to_camera(footprint, yaw, small), small)], fill=255
    )
    shadow_img = shadow_img.filter(ImageFilter.GaussianBlur(max(1.0, 0.04 * small["scale"])))
    shadow = np.asarray(shadow_img, dtype=np.float32) / 255
    wall, flo = studio["wall"].astype(np.float32), studio["floor"].astype(np.float32)
    base = wall + (flo - wall) * floor[..., None]  # (h, 1, 3)
    base = base * (1 + (brightness - 1) * table * floor)[..., None]
    base = base * (light * (1 - studio["shadow"] * shadow * floor))[..., None] + 3 * grain[..., None]
    bg = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB").resize((width, height), Image.BILINEAR)
    return np.array(bg)


def _render_view(
    rng: np.random.Generator, car: dict, studio: dict, view: int, grain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One photo and its mask: (H, W, 3) uint8 and (H, W) uint8 0/1.

    ``grain`` is the session's sensor noise, int16 and a little larger than the photo; each view uses
    a different crop of it, which is much cheaper than drawing fresh noise for every picture.
    """
    width, height = studio["size"]
    yaw = 2 * math.pi * (view - 1) / NUM_VIEWS + studio["turn"]
    faces = _car_faces(car, yaw, studio)
    image = _background(rng, car, yaw, studio)
    mask = np.zeros((height, width), dtype=np.uint8)
    corners = np.concatenate([face[1] for face in faces])
    x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 1, 0, None)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, [width, height])
    if x1 > x0 and y1 > y0:
        index = Image.new("L", (x1 - x0, y1 - y0), 0)
        draw = ImageDraw.Draw(index)
        # Each pixel's colour is a per-face blend of: the paint, the studio seen through glass, the
        # studio mirrored (the ceiling on up-facing faces, a wall/floor horizon on the sides) and lamp
        # highlights. Folding the per-face factors into one table keeps the per-pixel work small.
        table = np.zeros((256, 7), dtype=np.float32)  # r, g, b, side mirror, see-through, band shine, spot shine
        for i, (_, pixels, colour, material, k, up) in enumerate(faces[:255], start=1):
            draw.polygon([(x - x0, y - y0) for x, y in pixels], fill=i)
            clear = car["clear_glass"] * (material == GLASS)
            table[i, :3] = colour * (1 - clear) * (1 - k) + k * up * 240
            table[i, 3:] = [k * (1 - up), 0.9 * clear * (1 - k), SHINY[material] * (1 - up), SHINY[material] * up]
        index = np.asarray(index)  # (h, w) face number, 0 = background
        car_px = index > 0
        paint = np.take(table[:, :3], index, axis=0)  # (h, w, 3)
        mirror, see_through, band_shine, spot_shine = (np.take(table[:, c], index) for c in range(3, 7))  # (h, w)
        crop = image[y0:y1, x0:x1]
        rows = np.arange(y0, y1, dtype=np.float32)
        horizon = _to_pixels(_to_camera(np.array([0.0, 0.0, 0.16]), yaw, studio), studio)[1]
        dark = studio["floor"] * 0.55
        side = dark + (studio["wall"] - dark) / (1 + np.exp((rows - horizon) / (0.015 * studio["scale"])))[:, None]
        band = sum(  # strip lights mirrored as bright bands along the sides
            strength * np.exp(-(((rows - horizon + lift * studio["scale"]) / (spread * studio["scale"])) ** 2))
            for lift, spread, strength in studio["strips"]
        )
        rgb = paint + mirror[..., None] * side[:, None, :].astype(np.float32)
        rgb += see_through[..., None] * crop
        shine = band_shine * band[:, None] + spot_shine * _highlights(rng, x1 - x0, y1 - y0, studio)
        rgb += shine[..., None] * (250 - rgb)
        crop[car_px] = np.clip(rgb[car_px], 0, 255).astype(np.uint8)
        mask[y0:y1, x0:x1] = car_px
    oy, ox = (int(n) for n in rng.integers(0, np.array(grain.shape) - [height, width] + 1))
    noisy = image.astype(np.int16)
    noisy += grain[oy : oy + height, ox : ox + width, None]
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8), mask


def _highlights(rng: np.random.Generator, width: int, height: int, studio: dict) -> np.ndarray:
    """Reflections of the studio's strip lights and softboxes: (height, width) float32 in [0, 1]."""
    spots = Image.new("L", (width // 2 + 1, height // 2 + 1), 0)
    draw = ImageDraw.Draw(spots)
    w, h = spots.size
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.05, 0.6) * h
        length, thick = rng.uniform(0.2, 0.9) * w, rng.uniform(0.05, 0.25) * h + 1
        slope = rng.uniform(-0.15, 0.15) * length
        band = [(cx - length / 2, cy - slope / 2), (cx + length / 2, cy + slope / 2)]
        band += [(cx + length / 2, cy + slope / 2 + thick), (cx - length / 2, cy - slope / 2 + thick)]
        draw.polygon(band, fill=int(rng.integers(100, 220)))
    spots = spots.filter(ImageFilter.GaussianBlur(max(1.0, 0.004 * studio["scale"])))
    return np.asarray(spots.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255


def _save_mask_gif(mask: np.ndarray, path: Path) -> None:
    """A palette GIF whose pixel indices are the mask (0 background, 1 car), as Kaggle ships them."""
    gif = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
    gif.putpalette([0, 0, 0, 255, 255, 255])  # index 0 black, index 1 white
    gif.save(path, format="GIF")


def write_carvana_sample(
    root: str | Path,
    num_cars: int = 8,
    size: tuple[int, int] = CARVANA_SIZE,
    seed: int = 0,
    num_test_cars: int = 2,
    overwrite: bool = False,
) -> list[str]:
    """Write procedural car photos in the Kaggle Carvana layout.

    Writes ``train/<id>.jpg``, ``train_masks/<id>_mask.gif``, ``train_masks.csv`` (img,rle_mask),
    ``test/<id>.jpg`` (other cars, no masks) and ``metadata.csv``. Ids are ``<12 hex>_<01..16>``:
    16 turntable views per car, 01 the front, 05 and 13 the sides, 09 the back.

    The pictures are made hard on purpose, as the real ones are: white and silver cars on a light
    grey studio, soft floor shadows, studio lights mirrored in paint and glass, see-through windows,
    and cars that sit off-centre at different sizes. Neither the best global threshold nor the
    average training mask reaches a Dice of 0.85 on held-out cars; a small U-Net passes 0.97.

    Args:
        root: Folder to write into; created if missing.
        num_cars: Training cars (16 photos each).
        size: ``(width, height)`` of the photos; Kaggle's are 1918x1280.
        seed: Same seed, byte-identical files.
        num_test_cars: Cars written to ``test/`` without masks (0 for none).
        overwrite: Write into a non-empty ``root``, replacing its ``train``, ``train_masks`` and
            ``test`` folders and the two CSV files (anything else there is left alone).

    Returns:
        The training image ids, sorted.
    """
    _check_positive(num_cars=num_cars)
    if num_test_cars != 0:
        _check_positive(num_test_cars=num_test_cars)
    width, height = _check_size(size)
    root = _prepare_root(root, overwrite)
    for name in ("train", "train_masks", "test"):
        if (root / name).exists():
            shutil.rmtree(root / name)
        (root / name).mkdir()
    masks_rows, meta_rows, seen = [], [], set()
    for stream, folder, count in ((0, "train", num_cars), (1, "test", num_test_cars)):
        for index in range(count):
            rng = _rng(seed, stream, index)
            car_id = rng.bytes(6).hex()
            while car_id in seen:
                car_id = rng.bytes(6).hex()
            seen.add(car_id)
            car = _design_car(rng)
            studio = _studio(rng, car, (width, height))
            grain = np.rint(rng.standard_normal((height + 16, width + 16), dtype=np.float32) * 2.5).astype(np.int16)
            meta_rows.append([car_id, car["year"], car["make"], car["model"], car["style"], ""])
            for view in range(1, NUM_VIEWS + 1):
                image, mask = _render_view(_rng(seed, stream, index, view), car, studio, view, grain)
                image_id = f"{car_id}_{view:02d}"
                Image.fromarray(image).save(root / folder / f"{image_id}.jpg", quality=90)
                if folder == "train":
                    _save_mask_gif(mask, root / "train_masks" / f"{image_id}_mask.gif")
                    masks_rows.append([f"{image_id}.jpg", rle_encode(mask)])
    with open(root / "train_masks.csv", "w", newline="") as f:
        csv.writer(f).writerows([["img", "rle_mask"], *sorted(masks_rows)])
    with open(root / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "year", "make", "model", "trim1", "trim2"], *sorted(meta_rows)])
    return sorted(row[0].removesuffix(".jpg") for row in masks_rows)


# -------------------------------------------------------------------------------------- Cityscapes

CITIES = {
    "train": ("aachen", "bochum", "bremen", "cologne", "darmstadt"),
    "val": ("frankfurt", "lindau", "munster"),
    "test": ("berlin", "bielefeld", "bonn", "mainz"),
}
FRAME = 19  # the finely annotated frame of every Cityscapes snippet is its 20th, number 000019
# Every scene shows all 34 labelIds but one of these two groups of rarer classes (scene i of a split
# gets group i % 2, the train split starting with 0 and val with 1), so two scenes show them all.
RARE_GROUPS = (
    ("parking", "rail track", "train", "bridge", "caravan", "motorcycle"),
    ("guard rail", "tunnel", "truck", "bus", "trailer"),
)
# Paint of each class in the photo (not the annotation colours): base RGB and texture strength.
# fmt: off
LOOKS = {
    "road": ((82, 80, 86), 6), "sidewalk": ((150, 142, 138), 8), "parking": ((118, 108, 112), 6),
    "rail track": ((95, 85, 75), 12), "ground": ((128, 118, 100), 10), "terrain": ((104, 122, 62), 16),
    "building": ((150, 130, 110), 8), "wall": ((165, 160, 150), 6), "fence": ((120, 110, 95), 14),
    "guard rail": ((175, 178, 180), 6), "bridge": ((125, 122, 118), 6), "tunnel": ((45, 42, 40), 6),
    "pole": ((110, 112, 112), 4), "polegroup": ((105, 108, 108), 4), "traffic light": ((35, 35, 35), 4),
    "traffic sign": ((190, 190, 195), 4), "vegetation": ((55, 85, 35), 22), "sky": ((205, 215, 228), 3),
    "static": ((90, 85, 80), 8), "dynamic": ((140, 60, 40), 8), "ego vehicle": ((40, 42, 46), 3),
    "rectification border": ((0, 0, 0), 0), "out of roi": ((30, 30, 30), 2),
}
# fmt: on
# Sizes in metres: (width, height, length) of each road user.
# fmt: off
VEHICLES = {
    "car": (1.8, 1.5, 4.5), "truck": (2.5, 3.4, 8.0), "bus": (2.55, 3.2, 12.0), "caravan": (2.3, 2.7, 6.0),
    "trailer": (2.1, 1.8, 4.0), "train": (2.6, 3.6, 30.0), "motorcycle": (0.8, 1.1, 2.1), "bicycle": (0.6, 1.0, 1.8),
}
# fmt: on
CAMERA_HEIGHT = 1.3  # metres above the road, on the windscreen
MAX_TRIES = 30  # scenes drawn per picture before settling for one that hides a required class


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of 2-D points, counter-clockwise (Andrew's monotone chain)."""
    pts = sorted(map(tuple, np.round(points, 3)))
    if len(pts) < 3:
        return np.array(pts)

    def half(seq):
        out = []
        for p in seq:
            while (
                len(out) >= 2
                and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])
                <= 0
            ):
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


class _Street:
    """A street seen from a car's windscreen: objects placed in metres, projected to pixels."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]):
        self.rng, (self.width, self.height) = rng, size
        self.focal = 1.1 * self.width  # Cityscapes' focal length is about 2260 px at 2048 px wide
        self.vx = self.width * rng.uniform(0.45, 0.55)  # vanishing point
        self.vy = self.height * rng.uniform(0.40, 0.46)
        self.objects = []  # back to front: (label, polygon (K, 2), colour, decorations [(polygon, colour)])

    def project(self, x, y, z) -> np.ndarray:
        """(lateral x, height y, depth z) metres -> (column, row) pixels."""
        x, y, z = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, y, z)))
        z = np.maximum(z, 0.5)
        return np.stack([self.vx + self.focal * x / z, self.vy + self.focal * (CAMERA_HEIGHT - y) / z], -1)

    def box(self, x0, x1, y0, y1, z0, z1) -> np.ndarray:
        corners = np.array(np.meshgrid([x0, x1], [y0, y1], [z0, z1])).reshape(3, -1)
        return _hull(self.project(*corners))

    def quad(self, x0, x1, y0, y1, z0, z1) -> np.ndarray:
        """A flat piece: on the ground (y0 == y1) or a wall along the street (x0 == x1)."""
        if y0 == y1:
            return self.project([x0, x1, x1, x0], y0, [z0, z0, z1, z1])
        return self.project(x0, [y0, y0, y1, y1], [z0, z1, z1, z0])

    def look(self, label: str, jitter: float = 0.15) -> tuple[int, int, int]:
        base = np.array(LOOKS[label][0], dtype=np.float64)
        return tuple(int(v) for v in np.clip(base * self.rng.uniform(1 - jitter, 1 + jitter, 3), 0, 255))

    def add(self, label: str, polygon: np.ndarray, colour=None, decorations=()) -> None:
        colour = self.look(label) if colour is None else colour
        self.objects.append((label, np.asarray(polygon, dtype=np.float64), colour, list(decorations)))


# fmt: off
PERSON = np.array([  # outline of a standing person, (sideways, up) in units of body height
    (0.0, 1.0), (0.06, 0.98), (0.07, 0.9), (0.04, 0.86), (0.14, 0.82), (0.17, 0.52), (0.12, 0.52), (0.11, 0.7),
    (0.1, 0.45), (0.12, 0.0), (0.04, 0.0), (0.0, 0.42), (-0.04, 0.0), (-0.12, 0.0), (-0.1, 0.45), (-0.11, 0.7),
    (-0.12, 0.52), (-0.17, 0.52), (-0.14, 0.82), (-0.04, 0.86), (-0.07, 0.9), (-0.06, 0.98),
])
# fmt: on


def _road_user(street: _Street, label: str, x: float, z: float, colour=None) -> float:
    """Add a vehicle (with its rider, windows and licence plate) or a person at (x, z); returns its height."""
    rng = street.rng
    if label in ("person", "rider"):
        height = rng.uniform(1.55, 1.95) if label == "person" else rng.uniform(0.75, 0.9)
        base = 0.0 if label == "person" else VEHICLES["bicycle"][1] * 0.75
        outline = street.project(x + PERSON[:, 0] * height * 1.6, base + PERSON[:, 1] * height, z)
        street.add(label, outline, tuple(int(c) for c in rng.integers(20, 200, 3)))
        return base + height
    width, height, length = (v * rng.uniform(0.92, 1.08) for v in VEHICLES[label])
    body = street.box(x - width / 2, x + width / 2, 0, height * 0.6, z, z + length)
    cabin_x = (x - width * 0.43, x + width * 0.43)
    if label in ("car", "caravan"):
        top = street.box(*cabin_x, height * 0.6, height, z + length * 0.3, z + length * 0.75)
        glass = street.box(*cabin_x, height * 0.62, height * 0.93, z + length * 0.3, z + length * 0.32)
    else:
        top = street.box(x - width / 2, x + width / 2, height * 0.6, height, z, z + length * 0.98)
        glass = street.box(*cabin_x, height * 0.65, height * 0.9, z, z + 0.05)
    shares = np.array([share for share, _ in PAINTS])
    paint = colour or PAINTS[rng.choice(len(PAINTS), p=shares / shares.sum())][1]
    decorations = [(glass, (30, 34, 40))] if label not in ("bicycle", "motorcycle", "trailer") else []
    street.add(label, _hull(np.concatenate([body, top])), paint, decorations)
    if label in ("car", "truck", "bus", "caravan", "trailer"):
        plate = street.project([x - 0.26, x + 0.26, x + 0.26, x - 0.26], [0.3, 0.3, 0.42, 0.42], z - 0.01)
        street.add("license plate", plate, (215, 215, 210))
    if label in ("bicycle", "motorcycle"):
        _road_user(street, "rider", x, z + length / 2)
    return height


def _street_scene(rng: np.random.Generator, size: tuple[int, int], group: int) -> _Street:
    """One street: sky, ground, buildings, street furniture, then road users, nearest last."""
    s = _Street(rng, size)
    u = rng.uniform
    rare = set(RARE_GROUPS[group]) | {name for name in RARE_GROUPS[1 - group] if u() < 0.3}
    left, right = -u(4.5, 7.5), u(3.5, 6.5)  # road edges, metres from the camera
    facade_l, facade_r = left - u(3, 5), right + u(3, 5)
    far = u(55, 75)  # where the street ends; the distance beyond is left unlabelled
    width, height = size
    s.add("sky", [(0, 0), (width, 0), (width, s.vy), (0, s.vy)], s.look("sky", 0.05))
    # The ground, back to front: road and sidewalks, then what is painted or laid on them.
    road_marks = [(s.quad(-0.08, 0.08, 0, 0, z, z + 3), (225, 225, 220)) for z in np.arange(u(3, 8), far, 9)]
    s.add("road", s.quad(left, right, 0, 0, 1, far), decorations=road_marks)
    s.add("sidewalk", s.quad(facade_l, left, 0, 0, 1, far))
    s.add("sidewalk", s.quad(right, facade_r, 0, 0, 1, far))
    z = u(15, 25)
    s.add("terrain", s.quad(facade_l, facade_l + u(1, 2), 0, 0, z, z + u(10, 30)))
    z = u(15, 25)
    s.add("ground", s.quad(left - 2.5, left - 0.4, 0, 0, z, z + u(4, 8)))
    if "parking" in rare:
        z = u(6, 14)
        s.add("parking", s.quad(right - 2.4, right, 0, 0, z, z + u(10, 20)))
    rail = left + 1.8
    if "rail track" in rare:
        rails = [(s.quad(rail + d - 0.05, rail + d + 0.05, 0, 0, 2, far), (60, 58, 55)) for d in (-0.72, 0.72)]
        s.add("rail track", s.quad(rail - 0.9, rail + 0.9, 0, 0, 2, far), decorations=rails)
    # Buildings line both sides, with an alley on each side where the far distance shows (unlabelled).
    alleys = {facade_l: u(25, 40), facade_r: u(25, 40)}
    for facade, alley in alleys.items():
        z = u(2, 5)
        while z < far:
            z1 = min(far, z + u(8, 25))
            if z < alley < z1:
                z1 = alley  # stop at the alley, start again behind it
            tall = u(8, 25)
            glass = (int(u(30, 90)),) * 3
            windows = [
                (s.quad(facade, facade, y, y + 1.4, zx, zx + 1.2), glass)
                for y in np.arange(u(2, 3.5), tall - 1.5, 3.2)
                for zx in np.arange(z + 1, z1 - 1.5, 2.6)
            ]
            if z1 - z > 0.5:
                s.add("building", s.quad(facade, facade, 0, tall, z, z1), decorations=windows)
            z = alley + u(6, 12) if z1 == alley else z1
    # Things along the street, sorted far to near so that nearer ones hide farther ones. Walls and
    # fences stand behind everything else on the sidewalk: they sort by their far end.
    things = []  # (depth, callable adding the objects)
    for side, x_edge in ((-1, left), (1, right)):
        for _ in range(int(u(2, 5))):
            zt, xt = u(8, 60), x_edge + side * u(0.8, 2.0)
            things.append((zt, lambda xt=xt, zt=zt: _tree(s, xt, zt)))
        for k in range(int(u(2, 4))):
            zp, xp = u(18, 50), x_edge + side * 0.4
            things.append((zp, lambda xp=xp, zp=zp, k=k: _pole(s, xp, zp, light=k % 2 == 1)))
    zw = u(22, 32)
    for z in np.arange(zw, zw + u(8, 20), 4):
        things.append((z + 4, lambda z=z: s.add("wall", s.quad(facade_l + 0.2, facade_l + 0.2, 0, 2.0, z, z + 4))))
    zf = u(20, 30)
    for z in np.arange(zf, zf + u(8, 20), 4):
        slats = [
            (s.quad(facade_r - 0.3, facade_r - 0.3, 0, 1.8, zs, zs + 0.12), (70, 62, 50))
            for zs in np.arange(z, z + 4, 0.5)
        ]
        things.append(
            (
                z + 4,
                lambda z=z, slats=slats: s.add(
                    "fence", s.quad(facade_r - 0.3, facade_r - 0.3, 0, 1.8, z, z + 4), decorations=slats
                ),
            )
        )
    if "guard rail" in rare:
        zg = u(6, 15)
        for z in np.arange(zg, zg + u(12, 24), 4):
            things.append((z, lambda z=z: s.add("guard rail", s.quad(right + 0.3, right + 0.3, 0.4, 0.9, z, z + 4))))
    # The camera sees about 0.45 z to each side at depth z: sidewalk things stand farther than 15 m.
    # Low things stand near the start of the visible sidewalk, tall or big ones farther back.
    zs, zd = u(20, 24), u(16, 20)
    things.append((zs, lambda: s.add("static", s.box(left - 2.1, left - 1.5, 0, 1.0, zs, zs + 0.6))))
    things.append((zd, lambda: s.add("dynamic", s.box(right + 1.2, right + 2.0, 0, 1.1, zd, zd + 0.9))))
    zg = u(25, 40)
    things.append((zg, lambda: s.add("polegroup", s.box(right + 0.8, right + 1.4, 0, 5.5, zg, zg + 0.3))))
    if "bridge" in rare:
        zb = u(35, 60)
        things.append((zb, lambda: _bridge(s, left, right, zb)))
    if "tunnel" in rare:
        zt = u(40, far - 5)
        inside = [(s.project([left + 0.5, right - 0.5, right - 0.5, left + 0.5], [0, 0, 5.5, 5.5], zt), (18, 18, 20))]
        things.append(
            (
                zt,
                lambda: s.add(
                    "tunnel",
                    s.project([left - 0.5, right + 0.5, right + 0.5, left - 0.5], [0, 0, 7, 7], zt),
                    decorations=inside,
                ),
            )
        )
    # Road users: cars in the lanes and parked at the kerb, and whatever this scene's rare group adds.
    users = [("car", u(left + 3.5, right - 1.2), z) for z in np.sort(u(10, far - 15, int(u(2, 4))))]
    users += [("car", right - 1.1, u(36, 44))]
    users += [
        ("person", x_edge + side * u(0.6, 2.5), u(22, 35))
        for side, x_edge in ((-1, left), (1, right))
        for _ in range(2)
    ]
    users += [("bicycle", left - 0.8, u(28, 34))]
    # The right kerb, near to far: trailer, caravan, truck, a parked car; the bus in the middle lane.
    for label, x, z in (
        ("trailer", right - 1.2, u(21, 25)),
        ("caravan", right - 1.3, u(26, 31)),
        ("truck", right - 1.6, u(32, 40)),
        ("bus", (left + right) / 2 + 0.5, u(20, 35)),
    ):
        if label in rare:
            users.append((label, x, z))
    if "motorcycle" in rare:
        users.append(("motorcycle", u(left + 3.5, right - 1.5), u(10, 14)))
    if "train" in rare:
        users.append(("train", rail if "rail track" in rare else left + 1.8, u(28, 45)))
    for label, x, z in users:
        things.append((z, lambda label=label, x=x, z=z: _road_user(s, label, x, z)))
    things.sort(key=lambda thing: -thing[0])
    for _, add in things:
        add()
    # The car's own bonnet, and the edges of the rectified picture.
    hood = height * (1 - u(0.08, 0.13))
    xs = np.linspace(0, width, 17)
    s.add(
        "ego vehicle",
        [(0, height)]
        + [(x, hood + (height - hood) * 0.5 * ((2 * x / width - 1) ** 2)) for x in xs]
        + [(width, height)],
    )
    s.add("out of roi", [(0, height), (0, height * 0.8), (width * 0.04, height)])
    s.add("out of roi", [(width, height), (width, height * 0.8), (width * 0.96, height)])
    border = max(2.0, 0.005 * width)
    s.add("rectification border", [(0, 0), (border, 0), (border * 0.4, height), (0, height)])
    s.add("rectification border", [(width, 0), (width - border, 0), (width - border * 0.4, height), (width, height)])
    return s


def _tree(s: _Street, x: float, z: float) -> None:
    """Trunk and crown: both vegetation, as Cityscapes labels them."""
    top = s.rng.uniform(3, 6)
    s.add("vegetation", s.box(x - 0.15, x + 0.15, 0, top, z, z + 0.3), (70, 55, 40))
    radius = s.rng.uniform(1.5, 3.2)
    crown = _arc(x, top + radius * 0.6, radius, 0, 2 * math.pi, 19)[:-1]
    wobble = s.rng.uniform(0.85, 1.15, len(crown))[:, None]
    crown = (crown - [x, top + radius * 0.6]) * wobble + [x, top + radius * 0.6]
    s.add("vegetation", s.project(crown[:, 0], crown[:, 1], z))


def _pole(s: _Street, x: float, z: float, light: bool) -> None:
    """A pole carrying a traffic light or a traffic sign."""
    top = s.rng.uniform(3.5, 7)
    s.add("pole", s.box(x - 0.1, x + 0.1, 0, top, z, z + 0.2))
    y = s.rng.uniform(2.2, top - 0.8)
    if not light:
        sign = s.project([x - 0.35, x + 0.35, x + 0.35, x - 0.35], [y, y, y + 0.7, y + 0.7], z - 0.05)
        face = s.project([x - 0.25, x + 0.25, x + 0.25, x - 0.25], [y + 0.1, y + 0.1, y + 0.6, y + 0.6], z - 0.06)
        s.add("traffic sign", sign, decorations=[(face, tuple(int(c) for c in s.rng.integers(0, 255, 3)))])
    else:
        box = s.project([x - 0.18, x + 0.18, x + 0.18, x - 0.18], [y, y, y + 0.9, y + 0.9], z - 0.05)
        lamp_y = y + s.rng.choice([0.1, 0.4, 0.7])
        lamp = s.project([x - 0.1, x + 0.1, x + 0.1, x - 0.1], [lamp_y, lamp_y, lamp_y + 0.2, lamp_y + 0.2], z - 0.06)
        s.add(
            "traffic light",
            box,
            decorations=[(lamp, ((230, 40, 30), (240, 180, 20), (40, 220, 90))[int(s.rng.integers(3))])],
        )


def _bridge(s: _Street, left: float, right: float, z: float) -> None:
    s.add("bridge", s.box(-60, 60, 5.5, 7.2, z, z + 8))
    for x in (left - 1.2, right + 0.2):
        s.add("bridge", s.box(x, x + 1.0, 0, 5.5, z, z + 1))


def _inside(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip a polygon to the picture and round it to whole pixels, as the annotation tool stores them."""
    for axis, bound in ((0, 0), (0, width), (1, 0), (1, height)):
        if len(polygon) == 0:
            break
        polygon = _clip(polygon, bound, 1 if bound == 0 else -1, axis)
    return np.round(polygon).astype(int) if len(polygon) else np.zeros((0, 2), dtype=int)


def _annotations(objects: list, size: tuple[int, int]) -> dict:
    """The polygons of one picture, as in ``*_polygons.json``; licence plates included, as in the real files."""
    width, height = size
    kept = []
    for label, polygon in objects:
        points = _inside(polygon, width, height)
        if len(np.unique(points, axis=0)) >= 3:
            kept.append({"label": label, "polygon": points.tolist()})
    return {"imgHeight": height, "imgWidth": width, "objects": kept}


def _draw_annotations(annotations: dict) -> tuple[Image.Image, Image.Image, Image.Image]:
    """labelIds, color and instanceIds pictures drawn from the polygons, back to front, as cityscapesScripts does."""
    size = (annotations["imgWidth"], annotations["imgHeight"])
    classes = {c.name: c for c in Cityscapes.classes}
    label_ids, color = Image.new("L", size, 0), Image.new("RGBA", size, (0, 0, 0, 255))
    instances = Image.new("I", size, 0)
    draws = [ImageDraw.Draw(image) for image in (label_ids, color, instances)]
    counts = {}
    for obj in annotations["objects"]:
        name = (
            obj["label"].removesuffix("group")
            if obj["label"].endswith("group") and obj["label"] != "polegroup"
            else obj["label"]
        )
        cls = classes[name]
        if cls.id < 0:
            continue  # licence plates are annotated but never drawn
        points = [tuple(p) for p in obj["polygon"]]
        instance = cls.id
        if cls.has_instances and name == obj["label"]:
            instance = cls.id * 1000 + counts.get(name, 0)
            counts[name] = counts.get(name, 0) + 1
        for draw, value in zip(draws, (cls.id, (*cls.color, 255), instance), strict=True):
            draw.polygon(points, fill=value)
    return label_ids, color, Image.fromarray(np.asarray(instances).astype(np.uint16))


def _photo(rng: np.random.Generator, street: _Street, label_ids: np.ndarray) -> np.ndarray:
    """The camera picture of a street: painted polygons, texture, light and sensor noise. (H, W, 3) uint8."""
    size = (street.width, street.height)
    photo = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(photo)
    for _, polygon, colour, decorations in street.objects:
        for points, fill in [(polygon, colour), *decorations]:
            points = _inside(np.asarray(points, dtype=np.float64), *size)
            if len(points) >= 2:
                draw.polygon([tuple(p) for p in points], fill=tuple(fill))
    texture = np.zeros(256, dtype=np.float32)
    for cls in Cityscapes.classes:
        if cls.id >= 0:
            texture[cls.id] = LOOKS[cls.name][1] if cls.name in LOOKS else 5
    h, w = street.height, street.width
    blotches = Image.fromarray(rng.standard_normal((h // 8 + 2, w // 8 + 2)).astype(np.float32), "F").resize(
        (w, h), Image.BILINEAR
    )
    grain = np.asarray(blotches) + 0.5 * rng.standard_normal((h, w), dtype=np.float32)
    light = rng.uniform(0.8, 1.15) * (1.1 - 0.2 * np.arange(h, dtype=np.float32)[:, None] / h)  # (h, 1): brighter sky
    image = np.asarray(photo, dtype=np.float32) * light[..., None] + (texture[label_ids] * grain)[..., None]
    return np.clip(image + 2 * rng.standard_normal((h, w, 1), dtype=np.float32), 0, 255).astype(np.uint8)


def _coarse(rng: np.random.Generator, objects: list, size: tuple[int, int]) -> list:
    """Quick, rough polygons: small things skipped, the rest simplified and shrunk from their borders."""
    rough = []
    for label, polygon in objects:
        points = _inside(polygon, *size).astype(np.float64)
        if len(points) < 3 or label == "license plate":
            continue
        x, y = points[:, 0], points[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        if area < 0.002 * size[0] * size[1]:
            continue
        if len(points) > 8:
            points = points[::2]
        centre = points.mean(0)
        rough.append((label, centre + (points - centre) * rng.uniform(0.8, 0.92)))
    return rough


def _save_annotations(annotations: dict, folder: Path, stem: str, mode: str) -> None:
    label_ids, color, instances = _draw_annotations(annotations)
    label_ids.save(folder / f"{stem}_{mode}_labelIds.png")
    color.save(folder / f"{stem}_{mode}_color.png")
    instances.save(folder / f"{stem}_{mode}_instanceIds.png")
    with open(folder / f"{stem}_{mode}_polygons.json", "w") as f:
        json.dump(annotations, f, indent="\t")


def write_cityscapes_sample(
    root: str | Path,
    num_images: int = 6,
    size: tuple[int, int] = (2048, 1024),
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "val"),
    coarse: bool = True,
    overwrite: bool = False,
) -> None:
    """Write procedural street scenes in the Cityscapes layout, readable by ``torchvision.datasets.Cityscapes``.

    For each split: ``leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png`` and, beside it in
    ``gtFine``, the ``_gtFine_labelIds.png``, ``_gtFine_color.png``, ``_gtFine_instanceIds.png`` and
    ``_gtFine_polygons.json`` files; with ``coarse`` the same four under ``gtCoarse`` (not for test).
    Each picture shows about 30 of the 34 labelIds; two pictures (two in a split, or the first of
    train and of val) normally show all of 0..33. Licence plates are in the polygons files only.

    Args:
        root: Folder to write into; created if missing.
        num_images: Pictures per split.
        size: ``(width, height)``; the real pictures are 2048x1024.
        seed: Same seed, byte-identical files.
        splits: Any of ``"train"``, ``"val"``, ``"test"`` (labelled too, unlike the real test set).
        coarse: Also write rough ``gtCoarse`` annotations, with more unlabelled pixels.
        overwrite: Write into a non-empty ``root``, replacing the folders of these splits.
    """
    _check_positive(num_images=num_images)
    size = _check_size(size, minimum=32)
    if isinstance(splits, str) or not splits or any(s not in CITIES for s in splits) or len(set(splits)) != len(splits):
        raise InputError(f"splits: expected distinct names out of {tuple(CITIES)}, got {splits!r}")
    root = _prepare_root(root, overwrite)
    for split in splits:
        modes = ["gtFine"] + (["gtCoarse"] if coarse and split != "test" else [])
        for top in ["leftImg8bit", *modes]:
            if (root / top / split).exists():
                shutil.rmtree(root / top / split)
        number = list(CITIES).index(split)
        for i in range(num_images):
            city = CITIES[split][i % 2]
            stem = f"{city}_{i // 2:06d}_{FRAME:06d}"
            rng = _rng(seed, 10 + number, i)
            group = (i + number) % 2
            required = set(range(34)) - {c.id for c in Cityscapes.classes if c.name in RARE_GROUPS[1 - group]}
            for _ in range(MAX_TRIES):  # draw again until nothing required is hidden (or off the picture)
                street = _street_scene(rng, size, group)
                objects = [(label, polygon) for label, polygon, _, _ in street.objects]
                annotations = _annotations(objects, size)
                label_ids = np.array(_draw_annotations(annotations)[0])
                if required <= set(np.unique(label_ids).tolist()):
                    break
            for top in ["leftImg8bit", *modes]:
                (root / top / split / city).mkdir(parents=True, exist_ok=True)
            _save_annotations(annotations, root / "gtFine" / split / city, stem, "gtFine")
            photo = Image.fromarray(_photo(rng, street, label_ids))
            # Sensor noise hardly compresses: the fastest zlib level gives almost the same size.
            photo.save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", compress_level=1)
            if "gtCoarse" in modes:
                rough = _annotations(_coarse(rng, objects, size), size)
                _save_annotations(rough, root / "gtCoarse" / split / city, stem, "gtCoarse")
