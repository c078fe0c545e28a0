"""Procedural street scenes seen from a car's windscreen, drawn back to front as Cityscapes polygons."""

from __future__ import annotations

import math

import numpy as np

from unet_lib.cli.sample.common import PAINTS, arc, convex_hull

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


class Street:
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
        return convex_hull(self.project(*corners))

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


def _road_user(street: Street, label: str, x: float, z: float, colour=None) -> float:
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
    street.add(label, convex_hull(np.concatenate([body, top])), paint, decorations)
    if label in ("car", "truck", "bus", "caravan", "trailer"):
        plate = street.project([x - 0.26, x + 0.26, x + 0.26, x - 0.26], [0.3, 0.3, 0.42, 0.42], z - 0.01)
        street.add("license plate", plate, (215, 215, 210))
    if label in ("bicycle", "motorcycle"):
        _road_user(street, "rider", x, z + length / 2)
    return height


def street_scene(rng: np.random.Generator, size: tuple[int, int], group: int) -> Street:
    """One street: sky, ground, buildings, street furniture, then road users, nearest last."""
    s = Street(rng, size)
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


def _tree(s: Street, x: float, z: float) -> None:
    """Trunk and crown: both vegetation, as Cityscapes labels them."""
    top = s.rng.uniform(3, 6)
    s.add("vegetation", s.box(x - 0.15, x + 0.15, 0, top, z, z + 0.3), (70, 55, 40))
    radius = s.rng.uniform(1.5, 3.2)
    crown = arc(x, top + radius * 0.6, radius, 0, 2 * math.pi, 19)[:-1]
    wobble = s.rng.uniform(0.85, 1.15, len(crown))[:, None]
    crown = (crown - [x, top + radius * 0.6]) * wobble + [x, top + radius * 0.6]
    s.add("vegetation", s.project(crown[:, 0], crown[:, 1], z))


def _pole(s: Street, x: float, z: float, light: bool) -> None:
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


def _bridge(s: Street, left: float, right: float, z: float) -> None:
    s.add("bridge", s.box(-60, 60, 5.5, 7.2, z, z + 8))
    for x in (left - 1.2, right + 0.2):
        s.add("bridge", s.box(x, x + 1.0, 0, 5.5, z, z + 1))
