"""Scenes of the generated suite: the tissue a synthetic patient has and what each task's
classes put in it, as echogenicity, attenuation and specular-reflector maps for `bmode`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ultrabench_eval.data.synth import bmode
from ultrabench_eval.data.synth.bmode import Grid, Medium, Scanner, Transducer

FLUID_ECHO = 1e-5  # anechoic: about -50 dB below tissue
FLUID_LOSS = 0.5  # dB per image width: fluid barely attenuates
BONE_DEPTH = 0.02  # image widths


@dataclass(frozen=True)
class Patient:
    """Tissue parameters one synthetic patient shares across its images."""

    index: int
    attenuation: float  # round-trip tissue loss, dB per image width
    tissue_db: float  # parenchyma echogenicity relative to the reference
    texture_db: float  # amplitude of the slow echogenicity variation
    texture_scale: float  # its correlation length, image widths
    skin: float  # skin thickness, image widths
    fat: float  # subcutaneous fat thickness, image widths
    gain_db: float  # the sonographer's usual gain
    density: float  # background scatterers per resolution cell

    @property
    def id(self) -> str:
        return f"p{self.index:04d}"


Scene = Callable[[str, Patient, np.random.Generator, Grid], tuple[Medium, dict[str, Any]]]
# The key of a scene's fields under which a lesion's region lies: a function of image points
# (`Points`) -> bool, inside the lesion, so a mask is exact at any resolution (not a record field).
REGION = "_region"


@dataclass(frozen=True)
class Points:
    """Image points (x, y in image widths) where a region is evaluated, as a `Grid` gives them."""

    x: np.ndarray
    y: np.ndarray


def pixel_points(image_size: int) -> Points:
    """The centres of an S x S image's pixels (as `bmode.scan_convert` samples them)."""
    centres = (np.arange(image_size) + 0.5) / image_size
    x, y = np.meshgrid(centres, centres)
    return Points(x, y)


def random_patient(rng: np.random.Generator, index: int) -> Patient:
    """A patient's tissue, drawn from its own random stream."""
    u = rng.uniform
    return Patient(
        index=index,
        attenuation=float(u(22.0, 50.0)),
        tissue_db=float(rng.normal(0.0, 1.5)),
        texture_db=float(u(1.0, 3.0)),
        texture_scale=float(u(0.06, 0.2)),
        skin=float(u(0.008, 0.02)),
        fat=float(u(0.02, 0.09)),
        gain_db=float(rng.normal(0.0, 2.5)),
        density=float(u(8.0, 30.0)),
    )


def random_scanner(rng: np.random.Generator, patient: Patient, jitter_db: float) -> Scanner:
    """Probe settings for one image: transducer, gain, dynamic range, TGC, noise."""
    u = rng.uniform
    transducer = Transducer(
        center_freq=float(u(0.17, 0.24)),
        bandwidth=float(u(0.5, 0.8)),
        beam_sigma=float(u(1.0, 1.6)),
        focus=float(u(0.3, 0.7)),
        focal_zone=float(u(0.4, 0.7)),
    )
    return Scanner(
        transducer=transducer,
        gain_db=patient.gain_db + float(u(-jitter_db, jitter_db)),
        dynamic_range_db=float(u(48.0, 62.0)),
        # TGC set by eye: close to the patient's attenuation, never exact
        tgc_db=patient.attenuation * float(u(0.8, 1.1)),
        noise_db=float(u(-75.0, -60.0)),
    )


# Scene parts shared by the tasks


def _place(grid: Grid, axial: float, lateral: float) -> tuple[float, float]:
    """Image position of the point at fractional depth / line position in the field of view."""
    x, y, _, _ = grid.probe.positions(np.array(axial), np.array(lateral))
    return float(x), float(y)


def _tissue(grid: Grid, patient: Patient, rng: np.random.Generator):
    """Parenchyma with slow echogenicity variation: (echo, attenuation, specular) maps."""
    slow = bmode.smooth_field(rng, grid, patient.texture_scale)
    echo = 10.0 ** ((patient.tissue_db + patient.texture_db * slow) / 10.0)
    attenuation = np.full(grid.shape, patient.attenuation)
    return echo, attenuation, np.zeros(grid.shape)


def _body_wall(grid: Grid, patient: Patient, rng: np.random.Generator, echo, specular):
    """Skin (bright), subcutaneous fat (dark) and the fascia below it (a bright, slightly wavy
    reflector), all parallel to the transducer face, which the probe presses on the skin."""
    depth = np.broadcast_to(grid.depth, grid.shape)
    fat_end = patient.skin + patient.fat * float(rng.uniform(0.8, 1.2))
    echo = np.where(depth < patient.skin, 2.5, np.where(depth < fat_end, 0.3 * echo, echo))
    specular = specular + 1.5 * bmode.interface(depth - 0.35 * patient.skin, grid)
    fascia = float(rng.uniform(1.5, 3.0))
    wobble = 0.004 * bmode.smooth_field(rng, grid, 0.15)
    specular = specular + fascia * bmode.interface(depth - fat_end + wobble, grid)
    return echo, specular


def _disc(grid: Grid, cx: float, cy: float, a: float, b: float, angle: float = 0.0):
    """(inside weight, distance to the wall, wall facing the beam) of an ellipse."""
    rho = bmode.ellipse_radius(grid, cx, cy, a, b, angle)
    mean_radius = math.sqrt(a * b)
    weight = bmode.inside(rho, 1.5 * grid.step / mean_radius)
    facing = bmode.incidence(grid, grid.x - cx, grid.y - cy)
    return weight, (rho - 1.0) * mean_radius, facing


def _fluid(maps, weight: np.ndarray, echo_level: float = FLUID_ECHO):
    """Fill a region with fluid: anechoic, hardly attenuating (so tissue behind it is brighter
    after TGC: posterior enhancement)."""
    echo, attenuation, specular = maps
    echo = bmode.blend(echo, echo_level, weight)
    attenuation = bmode.blend(attenuation, FLUID_LOSS, weight)
    return echo, attenuation, specular * (1.0 - weight)


def _vessel_tube(grid, maps, x0, y0, angle, radius, wall):
    """A vessel in long axis: a straight anechoic tube with reflecting walls."""
    distance = np.abs(bmode.line_distance(grid, x0, y0, angle))
    weight = bmode.inside(distance / radius, 1.5 * grid.step / radius)
    echo, attenuation, specular = _fluid(maps, weight)
    normal_x = np.full(grid.shape, -math.sin(angle))
    facing = bmode.incidence(grid, normal_x, np.full(grid.shape, math.cos(angle)))
    specular = specular + wall * facing * bmode.interface(distance - radius, grid)
    return echo, attenuation, specular


def _vessel_disc(grid, maps, cx, cy, a, b, wall):
    """A vessel in short axis: an anechoic ellipse whose top and bottom walls reflect."""
    weight, distance, facing = _disc(grid, cx, cy, a, b)
    echo, attenuation, specular = _fluid(maps, weight)
    specular = specular + wall * facing * bmode.interface(distance, grid)
    return echo, attenuation, specular


def _bone(grid, maps, cx, cy, a, b, loss_db=45.0, brightness=5.0):
    """Bone (a rib, a cortex): a bright reflecting surface that stops the beam (shadow)."""
    echo, attenuation, specular = maps
    weight, distance, facing = _disc(grid, cx, cy, a, b)
    echo = bmode.blend(echo, 0.05, weight)
    # the cortex stops the beam within its first BONE_DEPTH
    attenuation = bmode.blend(attenuation, loss_db / BONE_DEPTH, weight)
    top = (grid.y < cy).astype(float)
    specular = specular + brightness * facing * top * bmode.interface(distance, grid)
    return echo, attenuation, specular


def _edge_lateral(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.03, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 0.97))


def rounded(value: float) -> float:
    return round(float(value), 4)


# ---------------------------------------------------------------------------------------------
# synth-lesion: none / cyst / solid


def _confounders(grid, patient, rng, maps) -> tuple[tuple, list[str]]:
    """Normal findings any image may hold, so that 'something dark' or 'a shadow' alone does
    not give the class away."""
    found = []
    echo, attenuation, specular = maps
    if rng.random() < 0.5:  # ligaments / septa: thin oblique reflectors
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = _place(grid, rng.uniform(0.2, 0.9), rng.uniform(0.1, 0.9))
            angle = float(rng.normal(0.0, 0.25))
            line = bmode.interface(bmode.line_distance(grid, x0, y0, angle), grid)
            specular = specular + float(rng.uniform(0.5, 1.5)) * line
        found.append("septa")
    maps = (echo, attenuation, specular)
    if rng.random() < 0.3:  # a small vessel in short axis
        cx, cy = _place(grid, rng.uniform(0.25, 0.85), rng.uniform(0.1, 0.9))
        r = float(rng.uniform(0.02, 0.035))
        maps = _vessel_disc(grid, maps, cx, cy, r * 1.2, r, float(rng.uniform(0.5, 1.5)))
        found.append("vessel")
    if rng.random() < 0.25:  # a rib at the edge of the field of view, with its shadow
        cx, cy = _place(grid, rng.uniform(0.1, 0.3), _edge_lateral(rng))
        size, loss = float(rng.uniform(0.04, 0.07)), float(rng.uniform(20.0, 40.0))
        maps = _bone(grid, maps, cx, cy, size, 0.025, loss_db=loss)
        found.append("rib")
    if rng.random() < 0.3:  # a focal hypoechoic area without shadow (focal fat sparing)
        cx, cy = _place(grid, rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.8))
        r = float(rng.uniform(0.04, 0.1))
        weight, _, _ = _disc(grid, cx, cy, r, r * float(rng.uniform(0.6, 1.0)), rng.uniform(0, 3))
        echo, attenuation, specular = maps
        maps = (echo * (1.0 - weight * float(rng.uniform(0.3, 0.6))), attenuation, specular)
        found.append("focal-area")
    return maps, found


def _cyst(grid, rng, maps, cx, cy, radius):
    """Simple cyst: round to oval, anechoic, thin bright wall, posterior enhancement. Also the
    cyst's region: a function of image points (x, y) -> inside (the ellipse, rho <= 1)."""
    aspect = float(rng.uniform(0.7, 1.0))
    angle = float(rng.uniform(-0.4, 0.4))
    weight, distance, facing = _disc(grid, cx, cy, radius, radius * aspect, angle)
    echo, attenuation, specular = _fluid(maps, weight, FLUID_ECHO * float(rng.uniform(0.5, 3.0)))
    wall = float(rng.uniform(0.8, 2.0))

    def region(points: Points) -> np.ndarray:
        return bmode.ellipse_radius(points, cx, cy, radius, radius * aspect, angle) <= 1.0

    return (echo, attenuation, specular + wall * facing * bmode.interface(distance, grid)), region


def _solid(grid, rng, maps, cx, cy, radius, patient):
    """Solid mass: irregular, lobulated and spiculated margin, hypoechoic with its own texture,
    strongly attenuating (posterior shadow), sometimes with microcalcifications."""
    echo, attenuation, specular = maps
    # the shape's parameters, drawn in the order the margin uses them
    aspect = float(rng.uniform(0.6, 1.0))
    angle = float(rng.uniform(-0.5, 0.5))
    lobes = [  # lobulation: (order, amplitude, phase)
        (int(k), float(rng.uniform(0.04, 0.12)), float(rng.uniform(0, 2 * np.pi)))
        for k in rng.choice(np.arange(2, 7), size=3, replace=False)
    ]
    spikes = int(rng.integers(8, 18))  # spiculation
    spike_size, spike_phase = float(rng.uniform(0.05, 0.3)), float(rng.uniform(0, 2 * np.pi))

    def relative_radius(points) -> np.ndarray:
        """< 1 inside the lobulated, spiculated margin."""
        rho = bmode.ellipse_radius(points, cx, cy, radius, radius * aspect, angle)
        theta = bmode.polar_angle(points, cx, cy)
        outline = np.ones(np.shape(rho))
        for k, size, phase in lobes:
            outline += size * np.cos(k * theta + phase)
        outline += spike_size * np.maximum(np.cos(spikes * theta + spike_phase), 0.0) ** 6
        return rho / outline

    weight = bmode.inside(relative_radius(grid), float(rng.uniform(0.08, 0.3)))
    contrast_db = float(rng.uniform(4.0, 13.0))
    texture = 10.0 ** (2.0 * bmode.smooth_field(rng, grid, 0.03) / 10.0)
    echo = bmode.blend(echo, echo * texture * 10.0 ** (-contrast_db / 10.0), weight)
    loss_factor = float(rng.uniform(2.5, 6.0))
    attenuation = bmode.blend(attenuation, patient.attenuation * loss_factor, weight)
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(2, 6))):
            dx, dy = rng.uniform(-0.6, 0.6, size=2) * radius * aspect
            dot = bmode.ellipse_radius(grid, cx + dx, cy + dy, 0.004, 0.004)
            specular = specular + 2.0 * np.exp(-2.0 * dot**2)

    def region(points: Points) -> np.ndarray:
        return relative_radius(points) <= 1.0

    return (echo, attenuation, specular), contrast_db, loss_factor, region


def lesion_scene(cls: str, patient: Patient, rng: np.random.Generator, grid: Grid):
    echo, attenuation, specular = _tissue(grid, patient, rng)
    echo, specular = _body_wall(grid, patient, rng, echo, specular)
    maps, found = _confounders(grid, patient, rng, (echo, attenuation, specular))
    fields: dict[str, Any] = {"findings": found}
    if cls != "none":
        axial, lateral = float(rng.uniform(0.3, 0.65)), float(rng.uniform(0.25, 0.75))
        cx, cy = _place(grid, axial, lateral)
        radius = float(rng.uniform(0.06, 0.13))
        fields.update(lesion_radius=rounded(radius), lesion_x=rounded(cx), lesion_y=rounded(cy))
        if cls == "cyst":
            maps, region = _cyst(grid, rng, maps, cx, cy, radius)
        else:
            maps, contrast, loss, region = _solid(grid, rng, maps, cx, cy, radius, patient)
            fields.update(contrast_db=rounded(contrast), attenuation_factor=rounded(loss))
        fields[REGION] = region
    echo, attenuation, specular = maps
    return Medium(echo, attenuation, patient.density, None, specular), fields


# ---------------------------------------------------------------------------------------------
# synth-texture: fine / sparse / coarse speckle


def texture_scene(cls: str, patient: Patient, rng: np.random.Generator, grid: Grid):
    echo, attenuation, specular = _tissue(grid, patient, rng)
    depth = np.broadcast_to(grid.depth, grid.shape)
    echo = np.where(depth < patient.skin, 2.5, echo)
    specular = specular + 1.5 * bmode.interface(depth - 0.35 * patient.skin, grid)
    clustering = None
    fields: dict[str, Any] = {}
    if cls == "fine":  # many small scatterers per cell: fully developed (Rayleigh) speckle
        density = float(rng.uniform(12.0, 40.0))
    elif cls == "sparse":  # a few per cell: spiky, non-Rayleigh speckle
        density = float(rng.uniform(0.3, 1.2))
    else:  # scatterers gathered in clusters larger than the resolution cell
        density = float(rng.uniform(5.0, 15.0))
        scale = float(rng.uniform(0.012, 0.025))
        strength = float(rng.uniform(0.8, 1.3))
        clustering = np.exp(strength * bmode.smooth_field(rng, grid, scale))
        clustering /= clustering.mean()
        fields.update(cluster_scale=rounded(scale), cluster_strength=rounded(strength))
    fields["density"] = rounded(density)
    return Medium(echo, attenuation, density, clustering, specular), fields


# ---------------------------------------------------------------------------------------------
# synth-view: bladder / vessel / muscle / liver


def _bladder(grid, patient, rng, maps):
    cx, cy = _place(grid, rng.uniform(0.35, 0.55), rng.uniform(0.35, 0.65))
    a, b = float(rng.uniform(0.14, 0.3)), float(rng.uniform(0.1, 0.2))
    power = float(rng.uniform(2.0, 3.5))  # rounded-rectangle outline
    dx, dy = np.abs(grid.x - cx) / a, np.abs(grid.y - cy) / b
    rho = (dx**power + dy**power) ** (1.0 / power)
    weight = bmode.inside(rho, 1.5 * grid.step / b)
    echo, attenuation, specular = _fluid(maps, weight)
    facing = bmode.incidence(grid, grid.x - cx, grid.y - cy)
    wall = float(rng.uniform(1.5, 3.0))
    specular = specular + wall * facing * bmode.interface((rho - 1.0) * b, grid)
    return (echo, attenuation, specular), {"size": rounded(math.sqrt(a * b))}


def _vessels(grid, patient, rng, maps):
    wall = float(rng.uniform(1.0, 2.5))
    if rng.random() < 0.5:  # long axis
        x0, y0 = _place(grid, rng.uniform(0.3, 0.65), 0.5)
        radius = float(rng.uniform(0.045, 0.08))
        maps = _vessel_tube(grid, maps, x0, y0, float(rng.normal(0.0, 0.15)), radius, wall)
        return maps, {"axis": "long", "size": rounded(radius)}
    count = int(rng.integers(1, 3))  # short axis: an artery, sometimes its vein beside it
    radius = float(rng.uniform(0.055, 0.1))
    for i in range(count):
        cx, cy = _place(grid, rng.uniform(0.3, 0.65), rng.uniform(0.25, 0.75))
        squash = 1.0 if i == 0 else float(rng.uniform(0.5, 0.9))  # veins are compressible
        maps = _vessel_disc(grid, maps, cx, cy, radius / math.sqrt(squash), radius * squash, wall)
    return maps, {"axis": "short", "size": rounded(radius)}


def _muscle(grid, patient, rng, maps):
    echo, attenuation, specular = maps
    echo = echo * float(rng.uniform(0.3, 0.55))  # muscle is darker than parenchyma
    # perimysium: families of thin, slightly wavy, oblique bright lines (pennate fibres)
    angle = float(rng.uniform(0.08, 0.45)) * (1 if rng.random() < 0.5 else -1)
    spacing = float(rng.uniform(0.035, 0.07))
    offset = bmode.line_distance(grid, 0.5, 0.5, angle) + 0.006 * bmode.smooth_field(rng, grid, 0.1)
    nearest = (offset + 0.5 * spacing) % spacing - 0.5 * spacing
    facing = bmode.incidence(grid, np.full(grid.shape, -math.sin(angle)), np.ones(grid.shape))
    strength = float(rng.uniform(0.8, 1.8))
    specular = specular + strength * facing * bmode.interface(nearest, grid)
    # epimysium: a thick bright fascia band between two muscles
    band_y = _place(grid, rng.uniform(0.3, 0.6), 0.5)[1]
    band_angle = float(rng.normal(0.0, 0.1))
    band = np.abs(bmode.line_distance(grid, 0.5, band_y, band_angle))
    thickness = float(rng.uniform(0.006, 0.015))
    echo = np.where(band < thickness, 3.0, echo)
    specular = specular + 2.5 * bmode.interface(band - thickness, grid)
    maps = (echo, attenuation, specular)
    fields: dict[str, Any] = {"fibre_angle": rounded(angle), "bone": False}
    if rng.random() < 0.5:  # bone surface deep below the muscle
        cx, cy = _place(grid, rng.uniform(0.85, 0.95), rng.uniform(0.3, 0.7))
        maps = _bone(grid, maps, cx, cy + 0.4, 0.7, 0.4, brightness=float(rng.uniform(3, 6)))
        fields["bone"] = True
    return maps, fields


def _liver(grid, patient, rng, maps):
    echo, attenuation, specular = maps
    maps = (echo * float(rng.uniform(1.0, 1.6)), attenuation, specular)
    count = int(rng.integers(2, 7))
    for _ in range(count):  # portal veins (bright walls) and hepatic veins (no wall)
        cx, cy = _place(grid, rng.uniform(0.25, 0.85), rng.uniform(0.1, 0.9))
        r = float(rng.uniform(0.02, 0.04))
        wall = float(rng.uniform(1.0, 2.0)) if rng.random() < 0.6 else 0.0
        if rng.random() < 0.7:
            maps = _vessel_disc(grid, maps, cx, cy, r * float(rng.uniform(1.0, 1.6)), r, wall)
        else:
            tube = _vessel_tube(grid, maps, cx, cy, float(rng.uniform(-1.0, 1.0)), r, wall)
            # keep only a short stretch of the branch
            near = bmode.inside(np.hypot(grid.x - cx, grid.y - cy) / 0.12, 0.3)
            maps = tuple(bmode.blend(m, t, near) for m, t in zip(maps, tube, strict=True))
    fields: dict[str, Any] = {"vessels": count, "diaphragm": False}
    if rng.random() < 0.6:  # the diaphragm: the liver dome's bright edge deep down; lung beyond
        echo, attenuation, specular = maps
        radius = float(rng.uniform(0.6, 1.0))
        cy = _place(grid, rng.uniform(0.8, 0.95), 0.5)[1] - radius
        cx = float(rng.uniform(0.2, 0.8))
        distance = np.hypot(grid.x - cx, grid.y - cy) - radius
        facing = bmode.incidence(grid, grid.x - cx, grid.y - cy)
        specular = specular + float(rng.uniform(3.0, 5.0)) * facing * bmode.interface(
            distance, grid
        )
        attenuation = np.where((distance > 0) & (grid.y > cy), 400.0, attenuation)
        maps = (echo, attenuation, specular)
        fields["diaphragm"] = True
    return maps, fields


_VIEWS = {"bladder": _bladder, "vessel": _vessels, "muscle": _muscle, "liver": _liver}


def view_scene(cls: str, patient: Patient, rng: np.random.Generator, grid: Grid):
    echo, attenuation, specular = _tissue(grid, patient, rng)
    echo, specular = _body_wall(grid, patient, rng, echo, specular)
    maps, fields = _VIEWS[cls](grid, patient, rng, (echo, attenuation, specular))
    echo, attenuation, specular = maps
    return Medium(echo, attenuation, patient.density, None, specular), fields
