"""B-mode image formation, following the steps a scanner takes.

Everything up to display happens on the pre-scan-conversion grid (axial samples x scan lines):

1. a medium: echogenicity (backscattered power), attenuation, scatterer density and clustering,
   and coherent specular reflectors, all sampled at the grid's sample positions;
2. random point scatterers with Gaussian amplitudes;
3. the point-spread function: an RF pulse (Gaussian-modulated cosine) along the beam and a
   Gaussian beam profile across it that widens away from the focus;
4. depth attenuation (along each scan line, so shadows and enhancement follow the beam),
   electronic noise, and time-gain compensation;
5. envelope detection with the Hilbert transform along the beam;
6. log compression to a dynamic range;
7. scan conversion to a Cartesian image (a sector for a convex probe, a rectangle for a linear
   one) with its field-of-view mask.

Scenes are described in image coordinates: x to the right and y downwards, both in image widths
(the output image is the unit square), so one scene renders at any size and with any probe.
All randomness comes from a `numpy.random.Generator` passed in explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, signal

CONVEX = "convex"
LINEAR = "linear"
PROBE_KINDS = (CONVEX, LINEAR)

# full width at half maximum of a Gaussian, in standard deviations
_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))
# grid density: axial samples per output pixel of depth, scan lines per pixel of width
AXIAL_PER_PIXEL = 3.0
LINES_PER_PIXEL = 1.0
# the shallowest sector a convex probe may have, in image widths of depth
_MIN_CONVEX_DEPTH = 0.55
# measured: an `interface` line across the beam with amplitude 1 peaks at about 3x tissue RMS
_SPECULAR_SCALE = 0.35
# random fields: table cells per correlation length
_FIELD_CELLS = 3.0


@dataclass(frozen=True)
class Probe:
    """Field-of-view geometry in image widths.

    Convex: the apex lies above the image, `radius` above the transducer face (the inner arc,
    concentric with the outer one) whose corners touch the top margin; the sector opens by
    +-`half_angle_deg` and reaches as deep as the image allows. Linear: a centred rectangle
    `width` wide from the top to the bottom margin.
    """

    kind: str = CONVEX
    half_angle_deg: float = 30.0
    radius: float = 0.25
    width: float = 0.8
    margin: float = 0.03

    def __post_init__(self) -> None:
        if self.kind not in PROBE_KINDS:
            raise ValueError(f"probe kind must be one of {PROBE_KINDS}, not {self.kind!r}")
        if self.kind == CONVEX and self.depth < 0.2:
            raise ValueError("convex probe: the sector is too shallow for the image")
        if self.kind == LINEAR and not 0.1 <= self.width <= 1.0 - 2 * self.margin:
            raise ValueError("linear probe: width must fit inside the margins")

    @property
    def half_angle(self) -> float:
        return math.radians(self.half_angle_deg)

    @property
    def apex_y(self) -> float:
        # the corners of the inner arc touch the top margin; its middle dips below them
        return self.margin - self.radius * math.cos(self.half_angle)

    @property
    def outer_radius(self) -> float:
        # as deep as the bottom margin allows, and no wider than the side margins
        bottom = 1.0 - self.margin - self.apex_y
        side = (0.5 - self.margin) / math.sin(self.half_angle)
        return min(bottom, side)

    @property
    def depth(self) -> float:
        """Imaged depth along a scan line, image widths."""
        if self.kind == CONVEX:
            return self.outer_radius - self.radius
        return 1.0 - 2.0 * self.margin

    @property
    def aperture(self) -> float:
        """Width of the field of view at mid-depth, image widths (sets the number of lines)."""
        if self.kind == CONVEX:
            return 2.0 * self.half_angle * (self.radius + 0.75 * self.depth)
        return self.width

    def positions(
        self, axial: np.ndarray, lateral: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Image position (x, y) and beam direction (bx, by) of the samples at fractional depth
        `axial` and fractional line position `lateral` (both 0..1, broadcast together)."""
        axial, lateral = np.broadcast_arrays(np.asarray(axial, float), np.asarray(lateral, float))
        if self.kind == CONVEX:
            r = self.radius + axial * self.depth
            theta = (2.0 * lateral - 1.0) * self.half_angle
            bx, by = np.sin(theta), np.cos(theta)
            return 0.5 + r * bx, self.apex_y + r * by, bx, by
        x = 0.5 + (lateral - 0.5) * self.width
        y = self.margin + axial * self.depth
        return x, y, np.zeros_like(x), np.ones_like(x)

    def fractions(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of `positions`: fractional depth and line position of image points; values
        outside 0..1 lie outside the field of view."""
        if self.kind == CONVEX:
            dx, dy = x - 0.5, y - self.apex_y
            r = np.hypot(dx, dy)
            theta = np.arctan2(dx, dy)
            axial = (r - self.radius) / self.depth
            lateral = (theta / self.half_angle + 1.0) / 2.0
            return axial, lateral
        axial = (y - self.margin) / self.depth
        lateral = (x - 0.5) / self.width + 0.5
        return axial, lateral


def random_probe(rng: np.random.Generator, kind: str | None = None) -> Probe:
    """A convex or linear probe with random geometry (kind drawn 50/50 unless given)."""
    if kind is None:
        kind = CONVEX if rng.random() < 0.5 else LINEAR
    margin = float(rng.uniform(0.02, 0.05))
    if kind == CONVEX:
        half = float(rng.uniform(22.0, 34.0))
        # the wider the sector, the closer the apex must be for the fan to stay deep enough
        most = min(0.45, (0.5 - margin) / math.sin(math.radians(half)) - _MIN_CONVEX_DEPTH)
        radius = float(rng.uniform(0.1, max(0.1, most)))
        return Probe(CONVEX, half_angle_deg=half, radius=radius, margin=margin)
    width = float(rng.uniform(0.55, 0.9))
    return Probe(LINEAR, width=min(width, 1.0 - 2 * margin), margin=margin)


@dataclass(frozen=True)
class Grid:
    """The pre-scan grid: image position, beam direction and depth of every sample."""

    probe: Probe
    x: np.ndarray  # (n_axial, n_lines)
    y: np.ndarray
    beam_x: np.ndarray
    beam_y: np.ndarray
    depth: np.ndarray  # (n_axial, 1): distance from the transducer face along the beam
    step: float  # axial sample spacing, image widths

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape


def prescan_grid(probe: Probe, image_size: int = 128) -> Grid:
    """Sample positions at a fixed physical spacing, so speckle has the same size in pixels
    whatever the probe (it fans out with depth for a convex probe, as on a scanner)."""
    n_axial = max(16, round(AXIAL_PER_PIXEL * image_size * probe.depth))
    n_lines = max(16, round(LINES_PER_PIXEL * image_size * probe.aperture))
    axial = np.linspace(0.0, 1.0, n_axial)[:, None]
    lateral = np.linspace(0.0, 1.0, n_lines)[None, :]
    x, y, bx, by = probe.positions(axial, lateral)
    depth = axial * probe.depth
    return Grid(probe, x, y, bx, by, depth, probe.depth / (n_axial - 1))


@dataclass(frozen=True)
class Transducer:
    """Pulse and beam, in grid units (cycles per axial sample, scan lines)."""

    center_freq: float = 0.2  # RF centre frequency, cycles per axial sample
    bandwidth: float = 0.6  # fractional -6 dB bandwidth of the pulse spectrum
    beam_sigma: float = 1.2  # lateral Gaussian beam profile at the focus, scan lines (sigma)
    focus: float = 0.45  # focal depth, fraction of the imaged depth
    focal_zone: float = 0.5  # depth span (fraction) over which the beam widens by sqrt(2)

    @property
    def pulse_sigma(self) -> float:
        """Standard deviation of the pulse's Gaussian envelope, axial samples."""
        # Gaussian spectrum, -6 dB full width B: sigma_f = B / FWHM, sigma_t = 1 / (2 pi sigma_f)
        sigma_f = self.bandwidth * self.center_freq / _FWHM
        return 1.0 / (2.0 * math.pi * sigma_f)

    def pulse(self) -> np.ndarray:
        """The RF pulse: a Gaussian-modulated cosine."""
        half = math.ceil(3.5 * self.pulse_sigma)
        t = np.arange(-half, half + 1, dtype=float)
        return np.exp(-0.5 * (t / self.pulse_sigma) ** 2) * np.cos(
            2 * math.pi * self.center_freq * t
        )

    @property
    def resolution_cell(self) -> float:
        """Area of the -6 dB resolution cell at the focus, in grid samples."""
        return (_FWHM * self.pulse_sigma) * (_FWHM * self.beam_sigma)

    def beam_sigmas(self, depth_fraction: np.ndarray) -> np.ndarray:
        """Lateral beam sigma at each depth: narrowest at the focus (capped at 1.6x)."""
        widening = np.sqrt(1.0 + ((depth_fraction - self.focus) / self.focal_zone) ** 2)
        return self.beam_sigma * np.minimum(widening, 1.6)


@dataclass(frozen=True)
class Scanner:
    """Acquisition and display settings."""

    transducer: Transducer = field(default_factory=Transducer)
    gain_db: float = 0.0  # overall receive gain
    dynamic_range_db: float = 55.0  # span of the log-compressed display
    headroom_db: float = 25.0  # white is this far above the echo of unit-echogenicity tissue
    tgc_db: float = 40.0  # time-gain compensation, dB per image width of depth (ideally = loss)
    noise_db: float = -60.0  # electronic noise relative to unit tissue, before TGC


@dataclass
class Medium:
    """Acoustic properties sampled at the grid samples (arrays of the grid's shape, or scalars).

    echo: backscattered power, 1 = reference tissue, 1e-5 or less for fluid (anechoic).
    attenuation: round-trip loss, dB per image width of path.
    density: mean number of scatterers per resolution cell (>= about 10: fully developed speckle).
    clustering: local multiplier of the scatterer density (mean about 1), for clustered texture.
    specular: coherent reflector amplitude, relative to the echo of unit tissue.
    """

    echo: np.ndarray
    attenuation: np.ndarray | float = 40.0
    density: float = 20.0
    clustering: np.ndarray | None = None
    specular: np.ndarray | None = None


def _pad(values: np.ndarray | float, shape: tuple[int, int], pad: tuple[int, int]) -> np.ndarray:
    """Extend a grid map by `pad` samples (axial, lateral) on each side with its edge values;
    nothing lies above the transducer face, so the top padding is zero."""
    grid = np.broadcast_to(np.asarray(values, dtype=float), shape)
    out = np.pad(grid, ((pad[0], pad[0]), (pad[1], pad[1])), mode="edge")
    out[: pad[0]] = 0.0
    return out


def path_loss_db(attenuation: np.ndarray | float, grid: Grid) -> np.ndarray:
    """Round-trip loss accumulated along each scan line down to every sample (dB)."""
    alpha = np.broadcast_to(np.asarray(attenuation, dtype=float), grid.shape)
    per_sample = alpha * grid.step
    # the loss up to the middle of each sample, so a sample is not shadowed by itself
    return np.cumsum(per_sample, axis=0) - 0.5 * per_sample


def scatterers(
    medium: Medium, grid: Grid, transducer: Transducer, rng: np.random.Generator, pad: tuple
) -> np.ndarray:
    """Random point scatterers on the (padded) grid, with Gaussian amplitudes.

    A random subset of grid points holds a scatterer; the amplitude variance is scaled so the mean
    backscattered power equals `echo` whatever the density, which then changes only the
    statistics (few scatterers per cell: non-Rayleigh, spiky speckle).
    """
    p_mean = min(medium.density / transducer.resolution_cell, 1.0)
    padded_shape = (grid.shape[0] + 2 * pad[0], grid.shape[1] + 2 * pad[1])
    prob = np.full(padded_shape, p_mean)
    if medium.clustering is not None:
        prob = np.clip(p_mean * _pad(medium.clustering, grid.shape, pad), 0.0, 1.0)
    echo = _pad(medium.echo, grid.shape, pad)
    present = rng.random(padded_shape) < prob
    amplitude = rng.standard_normal(padded_shape) * np.sqrt(echo / p_mean)
    return np.where(present, amplitude, 0.0)


def _lateral_beam(field_: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Convolve every row with a Gaussian of its own width (unit energy, so the echo power of
    tissue does not depend on the beam width), in the Fourier domain along the lines."""
    n = field_.shape[1]
    freqs = np.fft.rfftfreq(n)
    s = sigmas[:, None]
    transfer = np.exp(-2.0 * (math.pi * s * freqs[None, :]) ** 2) * np.sqrt(
        2 * math.sqrt(math.pi) * s
    )
    return np.fft.irfft(np.fft.rfft(field_, axis=1) * transfer, n=n, axis=1)


def _echo_sources(
    medium: Medium, grid: Grid, transducer: Transducer, rng: np.random.Generator, pad: tuple
) -> np.ndarray:
    """Scatterers and specular reflectors on the padded grid, weighted by the path loss."""
    sources = scatterers(medium, grid, transducer, rng, pad)
    if medium.specular is not None:
        # scaled so that a reflector drawn with `interface` across the beam echoes about
        # `specular` times as strongly as unit tissue (RMS)
        scale = _SPECULAR_SCALE * math.sqrt(2 * float(np.sum(transducer.pulse() ** 2)))
        sources += _pad(medium.specular, grid.shape, pad) * scale
    # echoes from deep scatterers have crossed everything above them twice: shadows and
    # enhancement follow the scan line, and therefore the beam direction after scan conversion
    loss = _pad(10.0 ** (-path_loss_db(medium.attenuation, grid) / 20.0), grid.shape, pad)
    return sources * loss


def _receive(
    sources: np.ndarray, grid: Grid, scanner: Scanner, rng: np.random.Generator, pad: tuple
) -> np.ndarray:
    """RF lines: lateral beam, electronic noise, RF pulse, time-gain compensation."""
    tx = scanner.transducer
    sigmas = tx.beam_sigmas(np.linspace(0.0, 1.0, grid.shape[0]))
    rf = _lateral_beam(sources, np.pad(sigmas, pad[0], mode="edge"))
    # electronic noise enters at the receiver, before TGC amplifies it (white here: after the
    # pulse filter its RMS relative to unit tissue is noise_db)
    rf += rng.standard_normal(rf.shape) * 10.0 ** (scanner.noise_db / 20.0)
    rf = ndimage.convolve1d(rf, tx.pulse(), axis=0, mode="constant")
    depth = np.pad(grid.depth[:, 0], pad[0], mode="edge")[:, None]
    return rf * 10.0 ** (scanner.tgc_db * depth / 20.0)


def echo_envelope(
    medium: Medium, grid: Grid, scanner: Scanner, rng: np.random.Generator
) -> np.ndarray:
    """Envelope of the beamformed, attenuated and time-gain-compensated echo on the grid, in
    linear amplitude (RMS 1 for unit-echogenicity tissue without net attenuation)."""
    tx = scanner.transducer
    pulse = tx.pulse()
    widest = float(tx.beam_sigmas(np.array([0.0, 1.0])).max())
    # room for the point-spread function to spill over the grid's edges
    pad = (len(pulse) // 2 + 1, math.ceil(4.0 * widest) + 1)
    rf = _receive(_echo_sources(medium, grid, tx, rng, pad), grid, scanner, rng, pad)
    envelope = np.abs(signal.hilbert(rf, axis=0))[pad[0] : -pad[0], pad[1] : -pad[1]]
    # unit-echogenicity tissue: RF variance = pulse energy, envelope power = twice that
    return envelope / math.sqrt(2 * float(np.sum(pulse**2)))


def log_compress(envelope: np.ndarray, scanner: Scanner) -> np.ndarray:
    """Display brightness in 0..1: decibels, shifted by the gain, clipped to the dynamic range."""
    db = 20.0 * np.log10(envelope + 1e-12) + scanner.gain_db
    return np.clip(1.0 + (db - scanner.headroom_db) / scanner.dynamic_range_db, 0.0, 1.0)


def scan_convert(
    display: np.ndarray, probe: Probe, image_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resample the pre-scan display onto the S x S image with bilinear interpolation; black
    outside the field of view. Returns (image uint8 [S, S], scan mask bool [S, S])."""
    centres = (np.arange(image_size) + 0.5) / image_size
    x, y = np.meshgrid(centres, centres)
    axial, lateral = probe.fractions(x, y)
    mask = (axial >= 0) & (axial <= 1) & (lateral >= 0) & (lateral <= 1)
    n_axial, n_lines = display.shape
    coords = np.stack([axial * (n_axial - 1), lateral * (n_lines - 1)])
    values = ndimage.map_coordinates(display, coords, order=1, mode="nearest")
    image = np.where(mask, np.rint(np.clip(values, 0.0, 1.0) * 255.0), 0.0).astype(np.uint8)
    return image, mask


def render(
    medium: Medium, grid: Grid, scanner: Scanner, rng: np.random.Generator, image_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The whole chain: medium -> (B-mode image uint8, scan mask bool)."""
    envelope = echo_envelope(medium, grid, scanner, rng)
    return scan_convert(log_compress(envelope, scanner), grid.probe, image_size)


# ---------------------------------------------------------------------------------------------
# Scene toolkit: maps over the grid, in image coordinates.


def smooth_field(rng: np.random.Generator, grid: Grid, scale: float) -> np.ndarray:
    """Zero-mean, unit-variance random field with correlation length `scale` (image widths),
    defined over the image so that it is the same tissue whatever the probe."""
    # a coarse table a few cells per correlation length, interpolated at the samples
    cells = int(np.clip(math.ceil(_FIELD_CELLS / scale), 8, 512))
    table = ndimage.gaussian_filter(rng.standard_normal((cells, cells)), _FIELD_CELLS, mode="wrap")
    table = (table - table.mean()) / (table.std() + 1e-12)
    return _bilinear(table, grid.y * cells - 0.5, grid.x * cells - 0.5)


def _bilinear(table: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear interpolation, clamped at the edges (faster than map_coordinates here)."""
    rows = np.clip(rows, 0.0, table.shape[0] - 1.0)
    cols = np.clip(cols, 0.0, table.shape[1] - 1.0)
    r0 = np.minimum(rows.astype(np.intp), table.shape[0] - 2)
    c0 = np.minimum(cols.astype(np.intp), table.shape[1] - 2)
    fr, fc = rows - r0, cols - c0
    top = table[r0, c0] * (1.0 - fc) + table[r0, c0 + 1] * fc
    bottom = table[r0 + 1, c0] * (1.0 - fc) + table[r0 + 1, c0 + 1] * fc
    return top * (1.0 - fr) + bottom * fr


def ellipse_radius(
    grid: Grid, cx: float, cy: float, a: float, b: float, angle: float = 0.0
) -> np.ndarray:
    """Normalised elliptical radius: 1 on the ellipse with semi-axes a (along `angle`, radians
    from the x axis) and b, less inside."""
    dx, dy = grid.x - cx, grid.y - cy
    c, s = math.cos(angle), math.sin(angle)
    return np.hypot((dx * c + dy * s) / a, (-dx * s + dy * c) / b)


def polar_angle(grid: Grid, cx: float, cy: float) -> np.ndarray:
    return np.arctan2(grid.y - cy, grid.x - cx)


def inside(rho: np.ndarray, softness: float) -> np.ndarray:
    """Soft indicator of rho < 1, with an edge `softness` wide (in rho units)."""
    return np.clip(0.5 + (1.0 - rho) / max(softness, 1e-6), 0.0, 1.0)


def interface(distance: np.ndarray, grid: Grid) -> np.ndarray:
    """Profile of an infinitely thin reflecting surface at `distance` = 0 (image widths): about
    one axial sample thick, so the pulse, not the drawing, sets its thickness in the image."""
    return np.exp(-0.5 * (distance / (0.7 * grid.step)) ** 2)


def incidence(grid: Grid, normal_x: np.ndarray, normal_y: np.ndarray, power: float = 2.0):
    """Specular reflections reach the probe only when the surface faces the beam."""
    norm = np.hypot(normal_x, normal_y) + 1e-12
    return np.abs((normal_x * grid.beam_x + normal_y * grid.beam_y) / norm) ** power


def line_distance(grid: Grid, x0: float, y0: float, angle: float) -> np.ndarray:
    """Signed distance to the straight line through (x0, y0) at `angle` (radians from the x
    axis); positive below the line for near-horizontal lines."""
    return -(grid.x - x0) * math.sin(angle) + (grid.y - y0) * math.cos(angle)


def blend(base: np.ndarray, value: np.ndarray | float, weight: np.ndarray) -> np.ndarray:
    """`value` where weight is 1, `base` where it is 0."""
    return base * (1.0 - weight) + value * weight
