"""Procedural cars: random proportions, paint and parts, as 3-D solids swept from side profiles."""

from __future__ import annotations

import math

import numpy as np

from unet_lib.cli.sample.common import PAINTS, arc, clip

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
# Materials: index into the per-face colour table.
PAINT, GLASS, TYRE, RIM, TRIM, HEADLIGHT, TAILLIGHT, PLATE = range(8)


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


def design_car(rng: np.random.Generator) -> dict:
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
    body += list(arc(axle_r, radius, arch, math.pi + gap, -gap, 9))
    body += list(arc(axle_f, radius, arch, math.pi + gap, -gap, 9))
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
    panes = [clip(window, mid + 0.012, 1), clip(window, mid - 0.012, -1)]
    cabin_decor = [(side, pane, GLASS) for side in ("a", "b") for pane in panes if len(pane) >= 3]
    cabin_decor += [(0, [(0.06, 0.06), (0.94, 0.06), (0.94, 0.94), (0.06, 0.94)], GLASS)]  # windshield
    cabin_decor += [(len(cabin) - 2, [(0.08, 0.08), (0.92, 0.08), (0.92, 0.92), (0.08, 0.92)], GLASS)]  # rear
    solids = [
        _Solid(body, 0.0, half, half * 0.96, PAINT, body_decor),
        _Solid(cabin, 0.0, half * 0.93, half * 0.74, PAINT, cabin_decor),
    ]
    wheel = arc(0, radius, radius, 0, 2 * math.pi, 15)[:-1]
    rim = arc(0, radius, radius * rng.uniform(0.55, 0.7), 0, 2 * math.pi, 15)[:-1]
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
