"""Synthetic chest CT: an anatomical phantom with COVID-19-like lung opacities and its voxel truth.

Everything here is numpy (plus :mod:`scipy.ndimage`). Volumes are indexed ``(z, y, x)``; patient coordinates are
DICOM LPS in mm: x increases to the patient's left, y to posterior, z to superior. The patient's right lung is
therefore at low x.

The anatomy is drawn in a *body frame* (X, Y, Z in mm, origin between the lungs at mid-lung height), which is
rotated about z by ``PhantomParams.rotation_deg`` and shifted by ``PhantomParams.offset_mm`` in the scanner. The
scanner table is fixed in the scanner frame. Each output slice averages an odd number of thin sub-slices across the
slice thickness (the slice profile) and is blurred in-plane with a Gaussian point-spread function (combined with
the pixel's own width) before correlated noise is added. Truth labels are sampled at the voxel centres before any
blur.

Anatomy: air, a curved table below the back, skin, subcutaneous fat, muscle, ribs and costal cartilage, sternum,
spine (vertebral bodies with cortex, discs, canal, arch), mediastinum with heart, aorta and superior vena cava,
trachea splitting into main bronchi that open into lobar bronchi, lungs with branching vessels, diaphragm domes
(the right higher) with liver and abdomen below, a stomach bubble under the left dome and bowel gas in the lowest
slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

__all__ = ["PhantomParams", "Lesions", "ChestTruth", "make_chest", "grid_shape"]

# tissue classes of the label map drawn before blur
_AIR, _SKIN, _FAT, _MUSCLE, _SOFT, _BLOOD, _LIVER = 0, 1, 2, 3, 4, 5, 6
_BONE, _CORTEX, _CARTILAGE, _DISC, _CSF, _LUNG, _VESSEL, _GAS = 7, 8, 9, 10, 11, 12, 13, 14


@dataclass(frozen=True)
class PhantomParams:
    """Anatomy and scanner parameters of the chest phantom (HU, mm, degrees).

    The defaults describe an average adult lying supine on the table, centred in the scanner. ``lung_hu`` is the
    parenchyma at mid depth; ``lung_gradient_hu`` is how much denser the most posterior (dependent) lung is than the
    most anterior.
    ``anatomy_seed`` fixes the random parts of the anatomy (vessel tree, bowel gas), so one subject keeps the same
    anatomy in every scan while pose and noise change.
    """

    air_hu: float = -1000.0
    lung_hu: float = -850.0
    lung_gradient_hu: float = 30.0
    fat_hu: float = -100.0
    skin_hu: float = 20.0
    muscle_hu: float = 40.0
    soft_tissue_hu: float = 40.0
    blood_hu: float = 40.0
    liver_hu: float = 55.0
    vessel_hu: float = 40.0
    bone_hu: float = 250.0
    cortical_hu: float = 700.0
    cartilage_hu: float = 120.0
    disc_hu: float = 80.0
    csf_hu: float = 15.0
    bowel_gas_hu: float = -950.0
    table_hu: float = 350.0
    body_width_mm: float = 330.0
    body_depth_mm: float = 230.0
    skin_mm: float = 2.0
    fat_mm: float = 12.0
    muscle_mm: float = 14.0
    lung_width_mm: float = 260.0
    lung_depth_mm: float = 175.0
    lung_height_mm: float = 230.0
    table_gap_mm: float = 12.0
    table_thickness_mm: float = 10.0
    rotation_deg: float = 0.0
    offset_mm: tuple[float, float] = (0.0, 0.0)
    lung_center_z_mm: float = 0.0
    psf_sigma_mm: float = 0.8
    noise_hu: float = 20.0
    anatomy_seed: int = 0


@dataclass(frozen=True)
class Lesions:
    """COVID-19-like opacities as fractions of the lung volume.

    ``ground_glass_pct`` and ``consolidation_pct`` are targets in percent of the lung volume (realised volumes are
    in the truth). The opacities grow around ``n_foci`` seeds, alternately in the right and left lung, placed
    preferentially under the pleura, posteriorly and in the lower zones; their edges are roughened by smooth noise
    (``irregularity``) and ground glass surrounds consolidation. HU ranges: ground glass from its rim to its core,
    consolidation around the middle of its range. For one ``seed`` the opacities of a smaller burden lie inside those
    of a larger one, so a subject's lesions grow and resolve in place.
    """

    ground_glass_pct: float
    consolidation_pct: float = 0.0
    seed: int = 0
    n_foci: int = 7
    irregularity: float = 0.7
    ground_glass_hu: tuple[float, float] = (-700.0, -350.0)
    consolidation_hu: tuple[float, float] = (-100.0, 50.0)


@dataclass
class ChestTruth:
    """Voxel truth of one phantom volume.

    ``lungs``: 0 outside, 1 right lung, 2 left lung (vessels, lesions and intrapulmonary airways included; trachea and
    main bronchi excluded). ``lesions``: 0 none, 1 ground glass, 2 consolidation (lung parenchyma only; vessels
    crossing a lesion stay 0). ``spacing`` is ``(dz, dy, dx)`` in mm and ``origin`` the patient position (mm) of
    voxel ``(0, 0, 0)`` as ``(x, y, z)``.
    """

    lungs: np.ndarray
    lesions: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    thickness_mm: float
    requested: dict = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Volumes in mL (from the voxel spacing) and percentages of the lung volume."""
        voxel_ml = float(np.prod(self.spacing)) / 1000.0
        lung = float(np.count_nonzero(self.lungs)) * voxel_ml
        ggo = float(np.count_nonzero(self.lesions == 1)) * voxel_ml
        cons = float(np.count_nonzero(self.lesions == 2)) * voxel_ml

        def pct(v: float) -> float:
            return 100.0 * v / lung if lung > 0 else 0.0

        return {
            "lung_volume_ml": lung,
            "right_lung_ml": float(np.count_nonzero(self.lungs == 1)) * voxel_ml,
            "left_lung_ml": float(np.count_nonzero(self.lungs == 2)) * voxel_ml,
            "ground_glass_ml": ggo,
            "consolidation_ml": cons,
            "opacity_ml": ggo + cons,
            "pct_opacity": pct(ggo + cons),
            "pct_ground_glass": pct(ggo),
            "pct_consolidation": pct(cons),
        }


def grid_shape(extent_mm: tuple[float, float, float], spacing: tuple[float, float, float]) -> tuple[int, int, int]:
    """Number of voxels ``(nz, ny, nx)`` that cover ``extent_mm`` ``(z, y, x)`` at ``spacing`` (mm)."""
    return tuple(max(1, int(round(e / s))) for e, s in zip(extent_mm, spacing))


# --------------------------------------------------------------------------------------------------------------
# anatomy in the body frame
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Anatomy:
    """Derived body-frame geometry (mm) and the random parts (vessel tree, gas pockets)."""

    xl: float  # lung ellipse centre |X|
    al: float  # lung half width (X)
    bl: float  # lung half depth (Y)
    z_apex: float
    z_taper: float
    z_recess: float
    dome_top: tuple[float, float]  # right, left
    bx: float  # body half width
    by: float  # body half depth
    y_spine: float
    segments: np.ndarray  # vessels: (n, 8) ax, ay, az, bx, by, bz, r0, r1
    gas: np.ndarray  # bowel gas ellipsoids: (n, 6) cx, cy, cz, rx, ry, rz


def _taper(a: _Anatomy, z: np.ndarray) -> np.ndarray:
    """Cross-section scale (0..1) of the lungs at height ``z``: rounded apices above ``z_taper``."""
    t = np.clip((z - a.z_taper) / (a.z_apex - a.z_taper), 0.0, None)
    return np.sqrt(np.clip(1.0 - t * t, 0.0, None))


def _floor(a: _Anatomy, side: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height of the diaphragm under lung ``side`` (-1 right, +1 left): domes, deepest laterally and posteriorly."""
    top = a.dome_top[0] if side < 0 else a.dome_top[1]
    depth = top - a.z_recess
    dx = x - side * a.xl * 0.9
    lateral = dx * side > 0
    u = np.where(lateral, dx / a.al, dx / (1.6 * a.al))
    dy = y + 0.1 * a.bl
    v = np.where(dy > 0, dy / a.bl, dy / (1.5 * a.bl))
    return np.maximum(top - depth * (u * u + v * v), a.z_recess)


def _capsule_dist(px, py, pz, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) of points to a tapered segment and the local radius there."""
    ax, ay, az, bx, by, bz, r0, r1 = (float(v) for v in seg)
    dx, dy, dz = bx - ax, by - ay, bz - az
    ll = dx * dx + dy * dy + dz * dz or 1e-9
    t = np.clip(((px - ax) * dx + (py - ay) * dy + (pz - az) * dz) / ll, 0.0, 1.0)
    qx = px - (ax + t * dx)
    qy = py - (ay + t * dy)
    qz = pz - (az + t * dz)
    return np.sqrt(qx * qx + qy * qy + qz * qz), r0 + (r1 - r0) * t


def _vessel_tree(a_xl: float, a_al: float, a_bl: float, rng: np.random.Generator) -> np.ndarray:
    """Branching, tapering pulmonary vessels from each hilum outward (segments in the body frame)."""
    segs: list[list[float]] = []

    def inside(x: float, y: float, side: int) -> bool:
        return ((x - side * a_xl) / a_al) ** 2 + (y / a_bl) ** 2 < 0.9

    def grow(start: np.ndarray, d: np.ndarray, r: float, side: int) -> None:
        length = (4.0 * r + 6.0) * rng.uniform(0.8, 1.2)
        n_ok = 0
        for f in (0.25, 0.5, 0.75, 1.0):  # stop at the pleura
            if not inside(start[0] + d[0] * length * f, start[1] + d[1] * length * f, side):
                break
            n_ok += 1
        if n_ok == 0:
            return
        end = start + d * (length * 0.25 * n_ok)
        r_end = r * 0.9
        segs.append([*start, *end, r, r_end])
        if n_ok < 4:
            return
        perp = np.cross(d, rng.normal(size=3))
        perp /= np.linalg.norm(perp) + 1e-9
        for scale, ang in ((0.85, 0.4), (0.68, -0.6)):
            r_child = r_end * scale
            if r_child < 0.6:
                continue
            ang = ang * rng.uniform(0.7, 1.3)
            nd = d * np.cos(ang) + perp * np.sin(ang)
            grow(end, nd / np.linalg.norm(nd), r_child, side)

    # first-order branches leave each hilum in directions spread over the lateral half sphere
    n_dir = 24
    k = np.arange(n_dir) + 0.5
    polar = np.arccos(1 - 2 * k / n_dir)
    azim = np.pi * (1 + 5**0.5) * k
    dirs = np.column_stack([np.sin(polar) * np.cos(azim), np.sin(polar) * np.sin(azim), np.cos(polar)])
    for side in (-1, 1):
        hilum = np.array([side * 0.62 * a_xl, -0.05 * a_bl, -5.0 + 5.0 * side])
        for d in dirs[dirs[:, 0] > -0.25]:
            dv = d * np.array([side, 1.0, 1.0]) + rng.normal(scale=0.1, size=3)
            grow(hilum, dv / np.linalg.norm(dv), 3.6 * rng.uniform(0.9, 1.1), side)
    return np.asarray(segs, dtype=np.float64).reshape(-1, 8)


def _geometry(p: PhantomParams) -> tuple:
    """The parameters that shape the anatomy (not HU values, pose or scanner)."""
    return (p.lung_width_mm, p.lung_depth_mm, p.lung_height_mm, p.lung_center_z_mm, p.body_width_mm,
            p.body_depth_mm, p.anatomy_seed)


def _anatomy(p: PhantomParams) -> _Anatomy:
    return _anatomy_of(_geometry(p))


@lru_cache(maxsize=32)
def _anatomy_of(geometry: tuple) -> _Anatomy:
    lung_width, lung_depth, h, z0, body_width, body_depth, seed = geometry
    rng = np.random.default_rng([seed, 7])
    half_w = lung_width / 2
    xl = 0.53 * half_w
    al = half_w - xl
    bl = lung_depth / 2
    z_apex, z_recess = z0 + 0.47 * h, z0 - 0.53 * h
    dome_r = z_recess + 0.33 * h
    segs = _vessel_tree(xl, al, bl, rng)
    gas = []
    for _ in range(4):  # bowel gas in the lowest slices, anterior and central
        gas.append([rng.uniform(-40, 70), rng.uniform(-0.8, -0.1) * bl, z_recess - rng.uniform(10, 35),
                    rng.uniform(8, 18), rng.uniform(6, 14), rng.uniform(6, 12)])
    # stomach bubble just under the left dome
    gas.append([0.8 * xl, -0.25 * bl, dome_r - 15 - 28, 24, 18, 12])
    return _Anatomy(
        xl=xl, al=al, bl=bl, z_apex=z_apex, z_taper=z_apex - 0.38 * h, z_recess=z_recess,
        dome_top=(dome_r, dome_r - 15.0), bx=body_width / 2, by=body_depth / 2,
        y_spine=0.6 * bl, segments=segs, gas=np.asarray(gas),
    )


# fixed mediastinal structures (body frame, mm, relative to the lung geometry)
def _great_vessels(a: _Anatomy) -> np.ndarray:
    """Aorta (ascending, arch, descending) and superior vena cava as tapered segments."""
    zc = a.z_taper + 10  # arch level
    b = a.bl
    low = a.z_recess - 200
    return np.array([
        [8, -0.35 * b, zc - 60, 8, -0.3 * b, zc, 14, 14],
        [8, -0.3 * b, zc, 16, 0.05 * b, zc + 18, 14, 13],
        [16, 0.05 * b, zc + 18, 22, 0.43 * b, zc, 13, 12],
        [22, 0.43 * b, zc, 22, 0.43 * b, low, 12, 12],
        [-24, -0.25 * b, zc - 45, -24, -0.25 * b, a.z_apex + 200, 9, 9],
    ], dtype=np.float64)


def _airways(a: _Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Main airways (trachea, main bronchi; excluded from the lungs) and lobar bronchi (inside the lungs).

    Segments carry lumen radii; walls are drawn 1.5-2 mm outside.
    """
    zc = a.z_taper + 5  # carina
    yt = 0.14 * a.bl
    rh = np.array([-0.55 * a.xl, 0.18 * a.bl, zc - 24])
    lh = np.array([0.62 * a.xl, 0.23 * a.bl, zc - 32])
    main = np.array([
        [0, yt, a.z_apex + 200, 0, yt, zc, 9, 9],
        [0, yt, zc, *rh, 6.5, 6.0],
        [0, yt, zc, *lh, 5.5, 5.0],
    ], dtype=np.float64)
    lobar = np.array([
        [*rh, -0.85 * a.xl, 0.1 * a.bl, zc + 12, 4.0, 2.5],
        [*rh, -0.9 * a.xl, 0.4 * a.bl, zc - 75, 4.5, 2.5],
        [*lh, 0.9 * a.xl, 0.1 * a.bl, zc + 8, 3.8, 2.3],
        [*lh, 0.95 * a.xl, 0.42 * a.bl, zc - 80, 4.2, 2.4],
    ], dtype=np.float64)
    return main, lobar


# --------------------------------------------------------------------------------------------------------------
# lesions
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _LesionField:
    foci: np.ndarray  # (n, 5): x, y, z, sigma, amplitude
    noise: np.ndarray  # coarse smooth noise (z, y, x), unit sd
    noise_origin: tuple[float, float, float]  # body-frame (X, Y, Z) of noise[0, 0, 0]
    noise_step: float
    fine: np.ndarray  # finer smooth noise on the same box, unit sd: ragged edges and ground-glass texture
    fine_step: float
    t_opacity: float
    t_consolidation: float


_NOISE_STEP = 5.0
_FINE_STEP = 2.5


def _lung_region(a: _Anatomy, X, Y, Z, great_vessels: np.ndarray | None = None) -> np.ndarray:
    """Lung mask (vessels and airways ignored) at body-frame points (broadcasting)."""
    tp = _taper(a, Z)
    ax = np.maximum(a.al * tp, 1e-3)
    bx = np.maximum(a.bl * (0.6 + 0.4 * tp), 1e-3)
    ell = ((np.abs(X) - a.xl) / ax) ** 2 + (Y / bx) ** 2 <= 1.0
    # anterior parts reach towards the midline, where the lungs nearly touch (anterior junction line)
    cx = 0.45 * a.xl
    ell |= ((np.abs(X) - cx) / np.maximum((cx - 1.5) * tp, 1e-3)) ** 2 + (
        (Y + 0.45 * a.bl) / np.maximum(0.4 * a.bl * tp, 1e-3)) ** 2 <= 1.0
    fl = np.where(X < 0, _floor(a, -1, X, Y), _floor(a, 1, X, Y))
    lung = ell & (Z >= fl) & (tp > 0)
    return lung & ~_mediastinum(a, X, Y, Z, great_vessels)


def _heart(a: _Anatomy, X, Y, Z):
    zc = a.dome_top[0] + 8
    return ((X - 0.25 * a.xl) / 62) ** 2 + ((Y + 0.28 * a.bl) / 50) ** 2 + ((Z - zc) / 52) ** 2


def _mediastinum(a: _Anatomy, X, Y, Z, great_vessels: np.ndarray | None = None) -> np.ndarray:
    """Non-lung space between the lungs: midline band (3 mm anteriorly), heart, great vessels, spine (body frame).

    ``great_vessels``, if given, is the precomputed mask of the great vessels widened by 4 mm.
    """
    med = ((np.abs(X) < 16) & (Y > -0.35 * a.bl)) | (np.abs(X) < 1.5) | ((np.abs(X) < 30) & (Y > 0.25 * a.bl))
    med = med | (_heart(a, X, Y, Z) <= 1.15)
    if great_vessels is not None:
        return med | great_vessels
    for seg in _great_vessels(a):
        if not _z_overlap(seg, Z, 4):
            continue
        d, r = _capsule_dist(X, Y, Z, seg)
        med |= d <= r + 4
    return med


def _z_overlap(seg: np.ndarray, Z, margin: float) -> bool:
    zmin, zmax = float(np.min(Z)), float(np.max(Z))
    lo = min(seg[2], seg[5]) - max(seg[6], seg[7]) - margin
    hi = max(seg[2], seg[5]) + max(seg[6], seg[7]) + margin
    return not (hi < zmin or lo > zmax)


def _sample_noise(field_: _LesionField, X, Y, Z, fine: bool = False) -> np.ndarray:
    ox, oy, oz = field_.noise_origin
    s = field_.fine_step if fine else field_.noise_step
    coords = np.stack([(Z - oz) / s, (Y - oy) / s, (X - ox) / s])
    return ndimage.map_coordinates(field_.fine if fine else field_.noise, coords, order=1, mode="nearest")


def _potential(field_: _LesionField, X, Y, Z, irregularity: float) -> np.ndarray:
    """Lesion potential at body-frame points (1-d arrays): sum of Gaussian foci, roughened by smooth noise."""
    pot = np.zeros(X.shape, np.float64)
    for fx, fy, fz, sg, amp in field_.foci:
        d2 = (X - fx) ** 2 + (Y - fy) ** 2 + (Z - fz) ** 2
        pot += amp * np.exp(-d2 / (2 * sg * sg))
    rough = _sample_noise(field_, X, Y, Z) + 0.35 * _sample_noise(field_, X, Y, Z, fine=True)
    return pot * np.exp(irregularity * rough)


@lru_cache(maxsize=8)
def _lesion_base(geometry: tuple, seed: int, n_foci: int, irregularity: float) -> tuple[_LesionField, np.ndarray]:
    """Foci and roughness of one subject's lesions, and the sorted potential on a 4 mm grid over the lungs."""
    a = _anatomy_of(geometry)
    rng = np.random.default_rng([seed, 11])
    step = 4.0
    xs = np.arange(-(a.xl + a.al), a.xl + a.al + step, step)
    ys = np.arange(-a.bl, a.bl + step, step)
    zs = np.arange(a.z_recess, a.z_apex + step, step)
    Zg, Yg, Xg = np.meshgrid(zs, ys, xs, indexing="ij")
    lung = _lung_region(a, Xg, Yg, Zg)
    X, Y, Z = Xg[lung], Yg[lung], Zg[lung]
    tp = np.maximum(_taper(a, Z), 1e-3)
    periph = np.minimum(np.sqrt(((np.abs(X) - a.xl) / (a.al * tp)) ** 2 + (Y / a.bl) ** 2), 1.0)
    post = Y / a.bl
    low = (a.z_apex - Z) / (a.z_apex - a.z_recess)
    w = np.exp(6.0 * periph + 2.5 * post + 3.0 * low)  # subpleural, posterior and lower zones first
    idx = []  # alternate between the lungs: COVID-19 pneumonia is usually bilateral
    for i in range(n_foci):
        side = (X < 0) if i % 2 == 0 else (X >= 0)
        ws = np.where(side, w, 0.0)
        ws[idx] = 0.0
        idx.append(int(rng.choice(X.size, p=ws / ws.sum())))
    sig = rng.uniform(12.0, 24.0, n_foci)
    amp = np.sort(rng.uniform(0.35, 1.0, n_foci))[::-1]
    foci = np.column_stack([X[idx], Y[idx], Z[idx], sig, amp])
    lo = np.array([-(a.xl + a.al) - 20, -a.bl - 20, a.z_recess - 20])
    hi = np.array([a.xl + a.al + 20, a.bl + 20, a.z_apex + 20])
    fields = []
    for step, sigma in ((_NOISE_STEP, 1.6), (_FINE_STEP, 1.0)):
        n = np.ceil((hi - lo) / step).astype(int) + 1
        noise = ndimage.gaussian_filter(rng.normal(size=(n[2], n[1], n[0])).astype(np.float32), sigma)
        fields.append((noise - noise.mean()) / (noise.std() + 1e-12))
    field_ = _LesionField(foci, fields[0], (lo[0], lo[1], lo[2]), _NOISE_STEP, fields[1], _FINE_STEP,
                          np.inf, np.inf)
    return field_, np.sort(_potential(field_, X, Y, Z, irregularity))


def _lesion_field(p: PhantomParams, les: Lesions) -> _LesionField:
    """Lesion field of ``les`` with the potential thresholds that give the requested burden."""
    base, pot = _lesion_base(_geometry(p), les.seed, les.n_foci, les.irregularity)
    f_o = np.clip((les.ground_glass_pct + les.consolidation_pct) / 100.0, 0.0, 1.0)
    f_c = np.clip(les.consolidation_pct / 100.0, 0.0, 1.0)
    t_o = float(np.quantile(pot, 1.0 - f_o)) if f_o > 0 else np.inf
    t_c = float(np.quantile(pot, 1.0 - f_c)) if f_c > 0 else np.inf
    return _LesionField(base.foci, base.noise, base.noise_origin, base.noise_step, base.fine, base.fine_step,
                        t_o, max(t_c, t_o))


# --------------------------------------------------------------------------------------------------------------
# drawing one slab of thin sub-slices
# --------------------------------------------------------------------------------------------------------------
def _ellipse(X, Y, cx, cy, rx, ry):
    return ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2


def _draw_segments(cls, value, segs, X2, Y2, Zs, to_index, inside=None, wall: float = 0.0, wall_value=None):
    """Paint tapered segments (lumen ``value``; optional wall ``wall`` mm thick) into ``cls`` (z, y, x)."""
    ny, nx = X2.shape
    for seg in segs:
        pad = max(seg[6], seg[7]) + wall + 1.0
        zsel = np.nonzero((Zs >= min(seg[2], seg[5]) - pad) & (Zs <= max(seg[2], seg[5]) + pad))[0]
        if zsel.size == 0:
            continue
        (i0, i1), (j0, j1) = to_index(seg, pad)
        i0, j0 = max(i0, 0), max(j0, 0)
        i1, j1 = min(i1, nx), min(j1, ny)
        if i0 >= i1 or j0 >= j1:
            continue
        z0, z1 = zsel[0], zsel[-1] + 1
        Xs = X2[None, j0:j1, i0:i1]
        Ys = Y2[None, j0:j1, i0:i1]
        Zsub = Zs[z0:z1, None, None]
        d, r = _capsule_dist(Xs, Ys, Zsub, seg)
        sub = cls[z0:z1, j0:j1, i0:i1]
        ok = np.ones(sub.shape, bool) if inside is None else inside[z0:z1, j0:j1, i0:i1]
        if wall > 0:
            sub[(d <= r + wall) & ok] = wall_value
        sub[(d <= r) & ok] = value


def _draw_slab(p: PhantomParams, a: _Anatomy, les: Lesions | None, X2, Y2, Zs, to_index):
    """Draw the thin sub-slices at body heights ``Zs`` (mm, 1-d).

    ``X2, Y2`` are the body-frame coordinates (mm) of the pixels around the body (the table is drawn by the
    caller). Returns the tissue classes, the lesion HU (NaN outside lesions, or None without lesions), the lung
    labels (1 right, 2 left) and the lesion labels (1 ground glass, 2 consolidation), each
    ``(len(Zs),) + X2.shape``.
    """
    nz = Zs.size
    ny, nx = X2.shape
    X = X2[None]
    Y = Y2[None]
    Z = Zs[:, None, None]
    cls = np.full((nz, ny, nx), _AIR, np.uint8)

    # body wall: skin, fat, muscle; the back is flattened on the table
    def body(shrink: float) -> np.ndarray:
        e = _ellipse(X2, Y2, 0.0, 0.0, a.bx - shrink, a.by - shrink) <= 1.0
        return e & (Y2 <= a.by - 6 - shrink)

    for shrink, c in ((0.0, _SKIN), (p.skin_mm, _FAT), (p.skin_mm + p.fat_mm, _MUSCLE),
                      (p.skin_mm + p.fat_mm + p.muscle_mm, _SOFT)):
        cls[:, body(shrink)] = c

    tp = _taper(a, Zs)[:, None, None]
    inner = body(p.skin_mm + p.fat_mm + p.muscle_mm)[None]

    # ribs: a ring around the lungs; each rib slopes down anteriorly. They lie within the chest wall's muscle where
    # large lungs fill the cavity inside it (else such a chest would have no rib beside its lungs)
    rx = a.xl + a.al * np.maximum(tp, 0.35) + 9.0
    ry = a.bl * (0.6 + 0.4 * tp) + 9.0
    rho = np.sqrt((X / rx) ** 2 + (Y / ry) ** 2)
    rloc = np.sqrt(X * X + Y * Y) / np.maximum(rho, 1e-6)
    dr = (rho - 1.0) * rloc
    phi2 = np.arctan2(np.abs(X2), Y2) / np.pi  # 0 posterior midline, 1 anterior midline
    zi, yi, xi = np.nonzero((np.abs(dr) < 5.0) & body(p.skin_mm + p.fat_mm)[None])
    phi = phi2[yi, xi]
    drn = dr[zi, yi, xi]
    zn = Zs[zi]
    ribs = np.zeros(zi.shape, bool)
    cortex = np.zeros(zi.shape, bool)
    cart = np.zeros(zi.shape, bool)
    for zk in np.arange(a.z_apex - 10.0, a.z_recess - 20.0, -24.0):
        dd = (drn / 5.0) ** 2 + ((zn - zk + 55.0 * phi ** 1.3) / 6.0) ** 2
        hit = dd <= 1.0
        bone = hit & (phi > 0.1) & (phi < 0.8)
        ribs |= bone
        cortex |= bone & (dd > 0.45)
        cart |= hit & (phi >= 0.8) & (phi < 0.92)
    cls[zi[cart], yi[cart], xi[cart]] = _CARTILAGE
    cls[zi[ribs], yi[ribs], xi[ribs]] = _BONE
    cls[zi[cortex], yi[cortex], xi[cortex]] = _CORTEX

    # sternum
    ster = (np.abs(X) < 14) & (Y > -ry - 6) & (Y < -ry + 6) & (Z > a.dome_top[0] - 25) & (Z < a.z_apex - 15)
    cls[ster & inner] = _BONE

    # abdomen under the diaphragm: liver on the right
    fl = np.where(X < 0, _floor(a, -1, X, Y), _floor(a, 1, X, Y))
    cavity = inner & (_ellipse(X, Y, 0, 0, rx - 9, ry - 9) <= 1.0)
    below = cavity & (Z < fl - 4)
    cls[below & (X < 0.15 * a.xl)] = _LIVER

    # lungs
    gv = np.zeros(cls.shape, np.uint8)
    _draw_segments(gv, 1, _great_vessels(a), X2, Y2, Zs, to_index, wall=4.0, wall_value=1)
    lung = _lung_region(a, X, Y, Z, gv > 0) & cavity
    cls[lung] = _LUNG

    # heart and great vessels
    cls[(_heart(a, X, Y, Z) <= 1.0) & inner] = _BLOOD
    _draw_segments(cls, _BLOOD, _great_vessels(a), X2, Y2, Zs, to_index)

    # spine: vertebral bodies with discs, canal, posterior arch and spinous process
    ys = a.y_spine
    r_vb = 17.0
    vb = _ellipse(X2, Y2, 0, ys, r_vb, r_vb)
    disc = (np.mod(Zs - a.z_recess, 28.0) < 6.0)[:, None, None]
    vbody = (vb <= 1.0)[None]
    cls[vbody & ~disc] = _BONE
    cls[(vbody & (vb > 0.78)[None]) & ~disc] = _CORTEX
    cls[vbody & disc] = _DISC
    ycan = ys + r_vb + 10
    rc = np.sqrt(X2 * X2 + (Y2 - ycan) ** 2)
    arch = (rc <= 15) & (Y2 > ycan - 6)
    cls[:, arch] = _CORTEX
    cls[:, arch & (rc <= 13)] = _BONE
    cls[:, rc <= 8] = _CSF
    spin = (np.abs(X2) < 4) & (Y2 > ycan + 12) & (Y2 < ycan + 30)
    cls[:, spin & inner[0]] = _BONE

    # pulmonary vessels, inside the lungs only
    _draw_segments(cls, _VESSEL, a.segments, X2, Y2, Zs, to_index, inside=lung)

    # airways: main airways (excluded from the lung labels) and lobar bronchi (inside the lungs)
    main, lobar = _airways(a)
    cls_main = np.zeros(cls.shape, np.uint8)
    _draw_segments(cls_main, 2, main, X2, Y2, Zs, to_index, wall=2.0, wall_value=1)
    main_mask = cls_main > 0
    cls[cls_main == 1] = _SOFT
    cls[cls_main == 2] = _AIR
    _draw_segments(cls, _AIR, lobar, X2, Y2, Zs, to_index, inside=lung, wall=1.3, wall_value=_SOFT)

    # bowel gas pockets
    for gx, gy, gz, grx, gry, grz in a.gas:
        if abs(float(np.clip(gz, Zs.min(), Zs.max())) - gz) > grz:
            continue
        g = _ellipse(X, Y, gx, gy, grx, gry) + ((Z - gz) / grz) ** 2 <= 1.0
        cls[g & below & ~lung] = _GAS

    lung_lab = np.where(lung & ~main_mask, np.where(X < 0, 1, 2), 0).astype(np.uint8)

    # lesions: only lung parenchyma turns opaque
    les_hu = None
    les_lab = np.zeros(cls.shape, np.uint8)
    if les is not None and (les.ground_glass_pct > 0 or les.consolidation_pct > 0):
        fld = _lesion_field(p, les)
        paren = (cls == _LUNG) & (lung_lab > 0)
        zi, yi, xi = np.nonzero(paren)
        if zi.size:
            Xp, Yp, Zp = X2[yi, xi], Y2[yi, xi], Zs[zi]
            pot = _potential(fld, Xp, Yp, Zp, les.irregularity)
            opac = pot >= fld.t_opacity
            cons = pot >= fld.t_consolidation
            g_lo, g_hi = les.ground_glass_hu
            c_lo, c_hi = les.consolidation_hu
            # ground glass denser towards the lesion core, consolidation with a smooth texture
            tex = np.clip(_sample_noise(fld, Xp + 37.0, Yp, Zp, fine=True), -2.0, 2.0)
            grade = np.sqrt(np.clip((pot / fld.t_opacity - 1.0) / 1.5, 0.0, 1.0))
            hu = g_lo + (g_hi - g_lo) * np.clip(grade + 0.15 * tex, 0.0, 1.0)
            hu_c = 0.5 * (c_lo + c_hi) + 0.25 * (c_hi - c_lo) * tex
            hu = np.where(cons, hu_c, hu)
            les_hu = np.full(cls.shape, np.nan, np.float32)
            les_hu[zi[opac], yi[opac], xi[opac]] = hu[opac]
            les_lab[zi[opac], yi[opac], xi[opac]] = np.where(cons[opac], 2, 1)
    return cls, les_hu, lung_lab, les_lab


def _lut(p: PhantomParams) -> np.ndarray:
    lut = np.zeros(15, np.float32)
    lut[[_AIR, _SKIN, _FAT, _MUSCLE, _SOFT, _BLOOD, _LIVER]] = [
        p.air_hu, p.skin_hu, p.fat_hu, p.muscle_hu, p.soft_tissue_hu, p.blood_hu, p.liver_hu]
    lut[[_BONE, _CORTEX, _CARTILAGE, _DISC, _CSF, _LUNG, _VESSEL, _GAS]] = [
        p.bone_hu, p.cortical_hu, p.cartilage_hu, p.disc_hu, p.csf_hu, p.lung_hu, p.vessel_hu, p.bowel_gas_hu]
    return lut


def make_chest(
    params: PhantomParams,
    spacing: tuple[float, float, float],
    shape: tuple[int, int, int] | None = None,
    lesions: Lesions | None = None,
    *,
    extent_mm: tuple[float, float, float] | None = None,
    thickness_mm: float | None = None,
    origin: tuple[float, float, float] | None = None,
    seed: int = 0,
    slab: int = 24,
) -> tuple[np.ndarray, ChestTruth]:
    """Render a chest CT volume in HU with its truth.

    Parameters
    ----------
    params : PhantomParams
        Anatomy (HU, mm) and scanner (PSF, noise) parameters.
    spacing : (dz, dy, dx)
        Voxel spacing in mm; ``dz`` is the distance between slice centres.
    shape : (nz, ny, nx), optional
        Output grid size; give either ``shape`` or ``extent_mm``.
    lesions : Lesions, optional
        Opacities to add; ``None`` gives healthy lungs.
    extent_mm : (z, y, x), optional
        Size of the grid in mm (rounded to whole voxels, see :func:`grid_shape`) when ``shape`` is not given.
    thickness_mm : float, optional
        Reconstructed slice thickness (the slice profile, a box this wide along z); default ``dz``.
    origin : (x, y, z), optional
        Patient position (mm, LPS) of voxel ``(0, 0, 0)``; default centres the grid on the isocentre in x and y and
        on the lungs (plus some upper abdomen) in z.
    seed : int
        Seed of the image noise.
    slab : int
        Output slices rendered at a time (memory vs. speed only; results do not depend on it).

    Returns
    -------
    hu : ndarray of float32, shape ``shape``
        Blurred, noisy CT values in HU.
    truth : ChestTruth
        Lung and lesion labels on the same grid (voxel centres, before blur) and volumes.
    """
    dz, dy, dx = (float(s) for s in spacing)
    if (shape is None) == (extent_mm is None):
        raise ValueError("give exactly one of shape and extent_mm")
    nz, ny, nx = (int(n) for n in (shape if shape is not None else grid_shape(extent_mm, spacing)))
    thick = float(thickness_mm) if thickness_mm is not None else dz
    a = _anatomy(params)
    if origin is None:
        zc = 0.5 * (a.z_apex + 18.0 + a.z_recess - 30.0)
        origin = (-(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, zc - (nz - 1) / 2 * dz)
    ox, oy, oz = (float(o) for o in origin)

    # the table: a curved plate fixed in the scanner frame, just below the patient's back
    th = np.deg2rad(params.rotation_deg)
    c, s = np.cos(th), np.sin(th)
    xp = ox + dx * np.arange(nx)
    yp = oy + dy * np.arange(ny)
    y_top = params.offset_mm[1] + (a.by - 6) * c + 0.5 * a.bx * abs(s) + params.table_gap_mm
    yt = y_top - 25.0 * (xp[None, :] / 200.0) ** 2
    table = (yp[:, None] >= yt) & (yp[:, None] <= yt + params.table_thickness_mm) & (np.abs(xp[None, :]) < 230)

    # everything else lies in the body: draw only the pixels of its bounding box, in the rotated and shifted body
    # frame (float32 halves the cost of the many whole-slab expressions)
    hx, hy = np.hypot(a.bx * c, a.by * s) + 2 * dx, np.hypot(a.bx * s, a.by * c) + 2 * dy
    i0 = int(np.clip(np.floor((params.offset_mm[0] - hx - ox) / dx), 0, nx))
    i1 = int(np.clip(np.ceil((params.offset_mm[0] + hx - ox) / dx) + 1, i0, nx))
    j0 = int(np.clip(np.floor((params.offset_mm[1] - hy - oy) / dy), 0, ny))
    j1 = int(np.clip(np.ceil((params.offset_mm[1] + hy - oy) / dy) + 1, j0, ny))
    u, v = np.meshgrid(xp[i0:i1] - params.offset_mm[0], yp[j0:j1] - params.offset_mm[1])
    X2 = (c * u + s * v).astype(np.float32)
    Y2 = (-s * u + c * v).astype(np.float32)

    def to_index(seg: np.ndarray, pad: float):
        """Pixel index ranges (x, y) within the body box that hold segment ``seg`` widened by ``pad`` mm."""
        bx = np.array([seg[0], seg[3]])
        by = np.array([seg[1], seg[4]])
        px = c * bx - s * by + params.offset_mm[0]
        py = s * bx + c * by + params.offset_mm[1]
        i = ((px.min() - pad - ox) / dx - i0, (px.max() + pad - ox) / dx - i0)
        j = ((py.min() - pad - oy) / dy - j0, (py.max() + pad - oy) / dy - j0)
        return (int(np.floor(i[0])), int(np.ceil(i[1])) + 1), (int(np.floor(j[0])), int(np.ceil(j[1])) + 1)

    # slice profile: an odd number of thin sub-slices across the thickness, the middle one at the slice centre
    n_sub = max(1, int(np.ceil(thick / 1.7)))
    n_sub += 1 - n_sub % 2
    offs = thick * ((np.arange(n_sub) + 0.5) / n_sub - 0.5)
    sig_y = np.sqrt(params.psf_sigma_mm ** 2 + dy * dy / 12.0) / dy
    sig_x = np.sqrt(params.psf_sigma_mm ** 2 + dx * dx / 12.0) / dx
    lut = _lut(params)

    hu = np.empty((nz, ny, nx), np.float32)
    lungs = np.zeros((nz, ny, nx), np.uint8)
    les_lab = np.zeros((nz, ny, nx), np.uint8)
    for k0 in range(0, nz, slab):
        k1 = min(nz, k0 + slab)
        zc_out = oz + dz * np.arange(k0, k1)
        Zs = (zc_out[:, None] + offs[None, :]).ravel().astype(np.float32)
        cls, les_hu, lung_lab, lab = _draw_slab(params, a, lesions, X2, Y2, Zs, to_index)
        body = lut[cls]
        if params.lung_gradient_hu:  # gravity-dependent density: posterior lung slightly denser
            par = cls == _LUNG
            body[par] += (params.lung_gradient_hu / (2 * a.bl)) * np.broadcast_to(Y2, cls.shape)[par]
        if les_hu is not None:
            np.copyto(body, les_hu, where=~np.isnan(les_hu))
        img = np.full((Zs.size, ny, nx), params.air_hu, np.float32)
        img[:, table] = params.table_hu
        box = img[:, j0:j1, i0:i1]
        np.copyto(box, body, where=cls != _AIR)
        img = ndimage.gaussian_filter(img, (0, sig_y, sig_x), mode="nearest")
        img = img.reshape(k1 - k0, n_sub, ny, nx).mean(axis=1)
        mid = n_sub // 2
        lungs[k0:k1, j0:j1, i0:i1] = lung_lab.reshape(k1 - k0, n_sub, j1 - j0, i1 - i0)[:, mid]
        les_lab[k0:k1, j0:j1, i0:i1] = lab.reshape(k1 - k0, n_sub, j1 - j0, i1 - i0)[:, mid]
        for k in range(k0, k1):
            rng = np.random.default_rng([seed, k])
            n = ndimage.gaussian_filter(rng.standard_normal((ny, nx), dtype=np.float32), 0.6)
            img[k - k0] += n * (params.noise_hu / (n.std() + 1e-12))
        hu[k0:k1] = img
    requested = {}
    if lesions is not None:
        requested = {"ground_glass_pct": lesions.ground_glass_pct, "consolidation_pct": lesions.consolidation_pct}
    truth = ChestTruth(lungs, les_lab, (dz, dy, dx), (ox, oy, oz), thick, requested)
    return hu, truth
