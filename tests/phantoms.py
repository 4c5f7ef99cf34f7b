"""Small synthetic CT phantoms for unit tests: chests with the anatomy real CT has and the demo generator lacks.

Everything is numpy (plus :func:`scipy.ndimage.gaussian_filter`), drawn from analytic shapes in mm, seeded and fast
(about 0.1-0.3 s a phantom on grids of 2.5-3.4 mm voxels).

Conventions (as :func:`lungtrial.imaging.segmentation.segment_lungs`): volumes are ``(z, y, x)`` int16 HU, spacing ``(dz, dy, dx)``
mm; x increases to the patient's LEFT (the right lung is at low x), y increases POSTERIOR (the back and the table
at high y), z increases SUPERIOR (the lung apex at high z index). Patient coordinates (mm) have x = 0 on the body's
midline, y = 0 at the torso's centre and z = 0 at the lowest slice.

Builders
--------
:func:`make_chest` (options: :class:`ChestOptions`)
    Torso (320 x 230 mm ellipse with a back flattened where it lies on the support) with skin/fat, muscle, discrete
    ribs sloping down anteriorly (one HU each, 300-700; costal cartilage anteriorly), sternum, spine (cortex ring of
    400 HU around 250 HU, discs, canal, arch), mediastinum with heart (optionally contrast-filled), aorta, hilar
    vessels, a trachea from the top slice down to the carina and two main bronchi to the hila, two lungs (-850 HU,
    denser posteriorly) with a rounded apex, branching vessels (40 HU) and lobar bronchi, resting on domed
    diaphragms (the right dome higher) whose posterior costophrenic recesses reach ``recess_mm`` below the dome top;
    liver under the right dome, spleen and the stomach with its gas under the left one. Options: support (flat
    board, curved tray with a foam mattress touching the flanks and the image edges, none), an air pocket under the
    back, soft or sharp kernel, arms down, a lateral field-of-view cut, lesions (ground glass, consolidation in the
    posterior recess, along the lateral wall, against the mediastinum above or around the hilum).
:func:`make_abdomen`
    Upper abdomen without lungs or trachea: liver, spleen, kidneys, stomach, colon and small bowel with gas.
:func:`make_head`
    Head (skull, brain, sinuses, mastoids) or, with ``air_phantom=True``, a head-shaped bone-walled shell of air
    (about 900 ml: as large as a lung).

Truth helpers: :func:`dice`, :func:`volume_ml`, :func:`side_scores`, :func:`fraction_inside`, :func:`leak`;
:func:`save_views` draws a phantom (and a segmentation) to a PNG.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import ndimage

__all__ = [
    "TISSUES",
    "LUNG_TISSUES",
    "LESION_SITES",
    "ChestOptions",
    "Phantom",
    "make_chest",
    "make_abdomen",
    "make_head",
    "dice",
    "volume_ml",
    "side_scores",
    "fraction_inside",
    "leak",
    "save_views",
]

# ---------------------------------------------------------------------------------------------------------- tissues
#: tissue label -> (name, HU before blur and noise); ``Phantom.tissue`` holds these labels
_TISSUE_TABLE = [
    ("air", -1000.0),
    ("fat", -100.0),
    ("muscle", 40.0),
    ("bone", 400.0),  # ribs get their own HU (300-700), vertebrae a 400 HU cortex around 250 HU
    ("marrow", 250.0),
    ("cartilage", 130.0),
    ("disc", 80.0),
    ("csf", 10.0),
    ("mediastinum", 40.0),
    ("heart", 40.0),
    ("aorta", 40.0),
    ("trachea", -1000.0),  # lumen, from the top slice to the carina
    ("bronchus", -1000.0),  # main bronchus lumen, carina to hilum
    ("lung", -850.0),
    ("vessel", 40.0),  # inside the lungs
    ("lobar_lumen", -1000.0),  # intrapulmonary bronchus lumen (lung)
    ("lobar_wall", 40.0),  # intrapulmonary bronchial wall (lung)
    ("ground_glass", -575.0),
    ("consolidation", 48.0),
    ("diaphragm", 40.0),
    ("liver", 60.0),
    ("spleen", 48.0),
    ("stomach_wall", 40.0),
    ("stomach_fluid", 15.0),
    ("stomach_gas", -1000.0),
    ("abdomen", 20.0),  # mesentery, bowel wall and contents
    ("kidney", 35.0),
    ("bowel_gas", -1000.0),
    ("colon_gas", -1000.0),
    ("table", 220.0),
    ("mattress", -930.0),
    ("back_air", -1000.0),
    ("cushion", -60.0),
    ("arm_fat", -100.0),
    ("arm_muscle", 40.0),
    ("arm_bone", 700.0),
    ("arm_marrow", 60.0),
    ("brain", 35.0),
    ("skull", 800.0),
    ("sinus_air", -1000.0),
    ("mastoid_air", -1000.0),
    ("phantom_air", -1000.0),
    ("scalp", 40.0),
]
TISSUES: dict[str, int] = {name: k for k, (name, _) in enumerate(_TISSUE_TABLE)}
_LUT = np.array([hu for _, hu in _TISSUE_TABLE], dtype=np.float32)
_T = TISSUES
#: tissues that belong to the lungs (truth labels 1/2 cover them and nothing else)
LUNG_TISSUES = ("lung", "vessel", "lobar_lumen", "lobar_wall", "ground_glass", "consolidation")
#: lesion sites of :class:`ChestOptions`
LESION_SITES = ("ground_glass", "recess", "lateral", "mediastinal", "perihilar")

# ------------------------------------------------------------------------------------------------------ geometry
_A, _B = 160.0, 115.0  # torso semi-axes (x, y) mm
_Y_BACK = 104.0  # the back is flat where it lies on the support
_T_FAT, _T_RIB0, _T_RIB1, _T_CAVITY = 10.0, 16.0, 25.0, 28.0  # insets from the skin (mm)
_Z_EXTENT = 300.0
_Z_APEX, _Z_SHOULDER = 272.0, 188.0  # lung apex; the apex rounds off above the shoulder height
_Z_CARINA = 185.0
_CARINA = (0.0, 6.0, _Z_CARINA)
_HILA = {1: (-42.0, 12.0, 168.0), 2: (46.0, 12.0, 161.0)}  # main bronchus ends (right, left)
_HEART = ((14.0, -16.0, 138.0), (64.0, 54.0, 50.0))
_AORTA_PATH = [(24.0, 40.0, -20.0), (24.0, 40.0, 200.0), (14.0, 2.0, 224.0), (6.0, -30.0, 206.0), (8.0, -22.0, 150.0)]


@dataclass(frozen=True)
class ChestOptions:
    """Options of :func:`make_chest` (mm, HU).

    Grid: ``slice_mm`` (dz), ``pixel_mm`` (dy = dx; default ``fov_mm / n_xy``), ``n_xy`` pixels across a square
    field of view of ``fov_mm`` (default 400 mm, 540 mm with arms), ``fov_cut_mm`` cuts that many mm off each
    lateral side of the body (the image then ends inside the chest wall or the lung).
    Support: ``table`` "flat" (a 5 mm board of 220 HU 5 mm below the back, not reaching the image edges), "curved"
    (a 6 mm tray whose sides come up around the flanks, touching them and both lateral image edges in every slice,
    with a -930 HU foam mattress between tray and back: an enclosed air-like region of about 0.9 l) or "none".
    ``back_air_ml``: a lens of air of that volume under the back (the middle 80 % of the slices, 220 mm wide), the
    flat board then under a -60 HU gel pad hollowed by the pocket, the curved tray lowered; a lung here holds
    about 2 l.
    Image: ``noise_hu`` soft-kernel noise (sd, correlated over about 1.5 voxels, PSF sigma 1.2 mm); ``sharp=True``
    instead: PSF 0.7 mm, an unsharp mask (edge overshoot) and white noise of ``sharp_noise_hu``.
    Anatomy: ``dome_right_mm`` height of the right dome's top above the lowest slice, ``dome_gap_mm`` how much lower
    the left one is, ``recess_mm`` how far the posterior costophrenic recesses reach below the dome tops;
    ``lung_hu``; ``contrast`` fills heart and aorta with ``contrast_hu`` (150-300 HU); ``arms`` puts the arms down
    beside the chest, separated by ``arm_gap_mm`` of ``arm_gap`` ("air" or "fat").
    Lesions: ``lesions`` any of ``LESION_SITES``: "ground_glass" (three blobs of -650 to -500 HU, vessels kept),
    "recess" (consolidation of ``cons_hu`` filling the right posterior costophrenic recess, on the diaphragm and
    against the posterior wall), "lateral" (a lens along the left lateral wall), "mediastinal" (a lens against the
    right side of the upper mediastinum, above the hilum), "perihilar" (a lens against the right side of the
    mediastinum wrapping the right hilum, where the main bronchus enters the lung).
    """

    slice_mm: float = 2.5
    pixel_mm: float | None = None
    n_xy: int = 160
    fov_mm: float | None = None
    fov_cut_mm: float = 0.0
    table: str = "flat"
    back_air_ml: float = 0.0
    noise_hu: float = 12.0
    sharp: bool = False
    sharp_noise_hu: float = 110.0
    dome_right_mm: float = 110.0
    dome_gap_mm: float = 17.0
    recess_mm: float = 50.0
    lung_hu: float = -850.0
    contrast: bool = False
    contrast_hu: float = 250.0
    arms: bool = False
    arm_gap: str = "air"
    arm_gap_mm: float = 4.0
    lesions: tuple[str, ...] = ()
    cons_hu: float = 48.0
    seed: int = 0


@dataclass
class Phantom:
    """A phantom volume and its truth.

    ``hu`` (z, y, x) int16; ``spacing`` (dz, dy, dx) mm; ``lungs`` truth uint8 (0, 1 right, 2 left; vessels,
    intrapulmonary bronchi and lesions included); ``lesions`` bool truth; ``tissue`` uint8 labels of ``TISSUES``
    (before blur); ``sites`` lesion site -> bool mask; ``levels`` named slice indices (apex, hilum, dome, recess,
    ...); ``x_mm``, ``y_mm``, ``z_mm`` the voxel centres' patient coordinates; ``options`` what built it.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    lungs: np.ndarray
    lesions: np.ndarray
    tissue: np.ndarray
    sites: dict[str, np.ndarray] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    x_mm: np.ndarray | None = None
    y_mm: np.ndarray | None = None
    z_mm: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def mask(self, *names: str) -> np.ndarray:
        """Voxels of the named tissues (bool)."""
        unknown = [n for n in names if n not in TISSUES]
        if unknown:
            raise KeyError(f"unknown tissue(s) {unknown}; known: {sorted(TISSUES)}")
        lut = np.zeros(len(TISSUES), dtype=bool)
        lut[[TISSUES[n] for n in names]] = True
        return lut[self.tissue]

    @property
    def airway(self) -> np.ndarray:
        """Trachea and main bronchi lumen (bool)."""
        return self.mask("trachea", "bronchus")

    def ml(self, mask: np.ndarray) -> float:
        return volume_ml(mask, self.spacing)


# ------------------------------------------------------------------------------------------------- truth helpers
def dice(a, b) -> float:
    """Dice coefficient of two masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def volume_ml(mask, spacing) -> float:
    return float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def side_scores(seg: np.ndarray, truth: np.ndarray, spacing) -> dict[int, dict[str, float]]:
    """Per side (1 right, 2 left): Dice, truth and segmented volume (ml) and the volume's relative error (%)."""
    out = {}
    for side in (1, 2):
        s, t = seg == side, truth == side
        vt, vs = volume_ml(t, spacing), volume_ml(s, spacing)
        out[side] = {
            "dice": dice(s, t),
            "truth_ml": vt,
            "seg_ml": vs,
            "volume_err_pct": 100.0 * (vs - vt) / vt if vt else float("nan"),
        }
    return out


def fraction_inside(mask: np.ndarray, seg: np.ndarray) -> float:
    """Fraction of the ``mask`` voxels that ``seg`` labels as lung (nan for an empty mask)."""
    n = int(np.count_nonzero(mask))
    return float(np.count_nonzero(mask & (seg > 0))) / n if n else float("nan")


def leak(seg: np.ndarray, phantom: Phantom, *names: str) -> dict[str, float]:
    """Segmented-lung voxels outside the truth lungs lying in the named tissues: ml and % of the truth lungs."""
    extra = (seg > 0) & (phantom.lungs == 0) & phantom.mask(*names)
    ml = phantom.ml(extra)
    return {"ml": ml, "pct_of_lungs": 100.0 * ml / max(phantom.ml(phantom.lungs > 0), 1e-9)}


# ------------------------------------------------------------------------------------------------------- shapes
class _Grid:
    def __init__(self, shape, spacing, origin):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(float(s) for s in spacing)
        dz, dy, dx = self.spacing
        self.z = (origin[0] + np.arange(self.shape[0]) * dz).astype(np.float32)
        self.y = (origin[1] + np.arange(self.shape[1]) * dy).astype(np.float32)
        self.x = (origin[2] + np.arange(self.shape[2]) * dx).astype(np.float32)
        self.Y, self.X = np.meshgrid(self.y, self.x, indexing="ij")

    def zi(self, z_mm: float) -> int:
        return int(np.clip(np.round((z_mm - self.z[0]) / self.spacing[0]), 0, self.shape[0] - 1))

    def box(self, lo, hi):
        """Index slices of the voxels whose centres lie within [lo, hi] (mm, (z, y, x)); None if empty."""
        out = []
        for axis, c in enumerate((self.z, self.y, self.x)):
            i0, i1 = np.searchsorted(c, lo[axis], "left"), np.searchsorted(c, hi[axis], "right")
            if i1 <= i0:
                return None
            out.append(slice(int(i0), int(i1)))
        return tuple(out)


def _ellipsoid(g: _Grid, centre, semi):
    """(box, mask within the box) of an axis-aligned ellipsoid, centre (x, y, z), semi-axes (x, y, z)."""
    (cx, cy, cz), (ax, ay, az) = centre, semi
    box = g.box((cz - az, cy - ay, cx - ax), (cz + az, cy + ay, cx + ax))
    if box is None:
        return None, None
    z, y, x = g.z[box[0]], g.y[box[1]], g.x[box[2]]
    r = ((z[:, None, None] - cz) / az) ** 2 + ((y[None, :, None] - cy) / ay) ** 2 + ((x[None, None, :] - cx) / ax) ** 2
    return box, r <= 1.0


def _tube(g: _Grid, a, b, r):
    """(box, mask) of the points within r mm of segment a-b (points (x, y, z) mm)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    lo, hi = np.minimum(a, b) - r, np.maximum(a, b) + r
    box = g.box((lo[2], lo[1], lo[0]), (hi[2], hi[1], hi[0]))
    if box is None:
        return None, None
    z, y, x = g.z[box[0]][:, None, None], g.y[box[1]][None, :, None], g.x[box[2]][None, None, :]
    ab = b - a
    t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / max(float(ab @ ab), 1e-9)
    t = np.clip(t, 0.0, 1.0)
    d2 = (x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2
    return box, d2 <= r * r


def _paint(vol, box, mask, value, where=None):
    if box is None:
        return
    if where is not None:
        mask = mask & where[box]
    vol[box][mask] = value


def _inside_ellipse(X, Y, a, b, cx=0.0, cy=0.0):
    return ((X - cx) / a) ** 2 + ((Y - cy) / b) ** 2 <= 1.0


def _torso(X, Y, inset=0.0):
    """Torso cross-section shrunk by ``inset`` mm; the skin and fat are flattened where the back lies on the
    support (y <= ``_Y_BACK``), the deeper layers keep their curve (4 mm of fat stay under the muscle)."""
    return _inside_ellipse(X, Y, _A - inset, _B - inset) & (Y <= _Y_BACK - min(inset, 4.0))


def _body_bottom(x):
    """y (mm) of the torso's lower (posterior) outline at x (nan outside the torso)."""
    with np.errstate(invalid="ignore"):
        return np.minimum(_B * np.sqrt(1.0 - (np.asarray(x, float) / _A) ** 2), _Y_BACK)


def _spine_block(X, Y):
    """Vertebral body with its surrounding soft tissue and the posterior elements: never thoracic cavity."""
    return _inside_ellipse(X, Y, 27.0, 25.0, 0.0, 46.0) | ((np.abs(X) < 24.0) & (Y > 46.0))


def _mediastinum_2d(X, Y, z):
    """Mediastinal soft tissue (bool 2D) at height z: a central column, the heart, hila, aorta, paraspinal tissue."""
    m = _spine_block(X, Y)
    # the central column: narrow anterior junction, wider middle (trachea, oesophagus, great vessels)
    half = np.where(Y < -45.0, 5.0, 26.0)
    m |= np.abs(X - 2.0) < half
    (hx, hy, hz), (ax, ay, az) = _HEART
    if abs(z - hz) < az:
        s = np.sqrt(1.0 - ((z - hz) / az) ** 2)
        m |= _inside_ellipse(X, Y, ax * s, ay * s, hx, hy)
    for cx, cy, cz in _HILA.values():  # hilar vessels around the main bronchi's ends
        if abs(z - cz) < 28.0:
            s = np.sqrt(1.0 - ((z - cz) / 28.0) ** 2)
            m |= _inside_ellipse(X, Y, 17.0 * s, 24.0 * s, cx, cy)
    if z < 200.0:  # descending aorta with its fat
        m |= _inside_ellipse(X, Y, 16.0, 16.0, 24.0, 40.0)
    return m


# ---------------------------------------------------------------------------------------------------- make_chest
def make_chest(options: ChestOptions | None = None, **kw) -> Phantom:
    """Chest phantom (see the module docstring and :class:`ChestOptions`); keyword arguments override options."""
    opts = replace(options or ChestOptions(), **kw)
    if opts.table not in ("flat", "curved", "none"):
        raise ValueError(f"table must be 'flat', 'curved' or 'none', got {opts.table!r}")
    if opts.back_air_ml > 0 and opts.table == "none":
        raise ValueError("back_air_ml needs a support (table 'flat' or 'curved') to hold the air against the back")
    bad = [s for s in opts.lesions if s not in LESION_SITES]
    if bad:
        raise ValueError(f"unknown lesion sites {bad}; known: {LESION_SITES}")
    rng = np.random.default_rng(opts.seed)

    fov = opts.fov_mm or (540.0 if opts.arms else 400.0)
    pix = opts.pixel_mm or fov / opts.n_xy
    dz = float(opts.slice_mm)
    nz = int(round(_Z_EXTENT / dz))
    ny = int(round(fov / pix))
    half_x = min(fov / 2.0, _A - opts.fov_cut_mm) if opts.fov_cut_mm > 0 else fov / 2.0
    nx = int(round(2 * half_x / pix))
    g = _Grid((nz, ny, nx), (dz, pix, pix), (dz / 2.0, -0.43 * fov, -(nx - 1) * pix / 2.0))
    X, Y = g.X, g.Y
    T = np.zeros(g.shape, dtype=np.uint8)  # tissue labels; air = 0
    info: dict = {}

    # -- support (painted first: the body overrides it where they touch), body, ribs, sternum, spine ----------
    pocket = None
    if opts.back_air_ml > 0:
        # a lens of air under the back: depth D (1 - (x / 110)^2) zf(z) below y = _Y_BACK, zf(z) an ellipse over
        # the middle 80 % of the slices; volume = D * (4/3 * 110 mm) * sum(zf) dz
        zc, zl = g.z[0] + 0.5 * _Z_EXTENT, 0.4 * _Z_EXTENT
        zf = np.sqrt(np.clip(1.0 - ((g.z - zc) / zl) ** 2, 0.0, None)).astype(np.float32)
        pocket_half = 110.0
        depth = opts.back_air_ml * 1000.0 / (4.0 / 3.0 * pocket_half * float(np.sum(zf)) * dz)
        f = np.clip(1.0 - (X / pocket_half) ** 2, 0.0, None)
        pocket = (Y[None] >= _Y_BACK) & (Y[None] < _Y_BACK + depth * f[None] * zf[:, None, None])
    else:
        depth = 0.0
    info["pocket_depth_mm"] = depth
    _support(T, X, Y, opts.table, fov, info, depth)
    if pocket is not None:
        T[pocket & (T != _T["table"])] = _T["back_air"]
    body = _torso(X, Y)
    T[:, body] = _T["fat"]
    T[:, _torso(X, Y, _T_FAT)] = _T["muscle"]
    cavity = _torso(X, Y, _T_CAVITY) & ~_spine_block(X, Y)
    rib_id, rib_hu = _ribs(T, g, rng)
    sternum = (np.abs(X) < 16.0) & (Y < 0.0) & _torso(X, Y, 12.0) & ~_torso(X, Y, _T_CAVITY)
    zs = (g.z > 120.0) & (g.z < 268.0)
    sy, sx = np.nonzero(sternum)
    T[np.flatnonzero(zs)[:, None], sy[None, :], sx[None, :]] = _T["bone"]
    _spine(T, g)

    # -- thorax and upper abdomen, slice by slice -----------------------------------------------------------------
    zr_top, zl_top = opts.dome_right_mm, opts.dome_right_mm - opts.dome_gap_mm
    dome = _dome(X, Y, zr_top, zl_top, opts.recess_mm)
    lungs = np.zeros(g.shape, dtype=np.uint8)
    apex_c = {1: (-64.0, 30.0), 2: (64.0, 30.0)}
    stomach_c = (56.0, -12.0, zl_top - 40.0)
    spleen_c = (92.0, 48.0, zl_top - 42.0)
    liver_edge = (X < 8.0 + np.clip(-(Y + 10.0), 0.0, None) * 0.9) & (X < 70.0)
    (hx, hy, hz), (hax, hay, haz) = _HEART
    for k, z in enumerate(g.z):
        z = float(z)
        plane = T[k]
        above = cavity & (z > dome)
        if z < _Z_APEX:
            med2d = _mediastinum_2d(X, Y, z)
            free = above & ~med2d
            for side, sign in ((1, -1.0), (2, 1.0)):
                lung = free & (sign * X > 0)
                if z > _Z_SHOULDER:
                    # rounded apex: the section shrinks towards the apex centre (the mediastinal side stays)
                    s = np.sqrt(max(1.0 - ((z - _Z_SHOULDER) / (_Z_APEX - _Z_SHOULDER)) ** 2, 1e-6))
                    cx, cy = apex_c[side]
                    Xs, Ys = cx + (X - cx) / s, cy + (Y - cy) / s
                    lung &= _torso(Xs, Ys, _T_CAVITY) & ~_spine_block(Xs, Ys) & ~_mediastinum_2d(Xs, Ys, z)
                    lung &= sign * Xs > 0
                lungs[k][lung] = side
        med = above & (lungs[k] == 0)
        plane[med] = _T["mediastinum"]
        # heart and aorta inside the mediastinum
        if abs(z - hz) < haz:
            s = np.sqrt(1.0 - ((z - hz) / haz) ** 2)
            plane[med & _inside_ellipse(X, Y, hax * s - 3.0, hay * s - 3.0, hx, hy)] = _T["heart"]
        # below the dome: diaphragm muscle, then liver / stomach / spleen / abdomen
        below = cavity & (z <= dome)
        if below.any():
            plane[below] = _T["diaphragm"]
            under = cavity & (z < dome - 5.0)
            liver = under & liver_edge
            st = under & _ellipse_slice(X, Y, z, stomach_c, (42.0, 44.0, 44.0))
            st_in = st & _ellipse_slice(X, Y, z, stomach_c, (38.0, 40.0, 40.0)) & (z < dome - 9.0)
            sp = under & _ellipse_slice(X, Y, z, spleen_c, (28.0, 38.0, 52.0)) & ~st
            plane[under] = _T["abdomen"]
            plane[liver & ~st] = _T["liver"]
            plane[sp] = _T["spleen"]
            plane[st] = _T["stomach_wall"]
            plane[st_in] = _T["stomach_fluid"]
            plane[st_in & (Y < stomach_c[1] - 8.0)] = _T["stomach_gas"]  # supine: gas rises anteriorly
        if z >= _Z_APEX:
            plane[cavity] = _T["mediastinum"]

    # aorta (tube along its path, inside the mediastinum / behind the diaphragm)
    for a, b in zip(_AORTA_PATH[:-1], _AORTA_PATH[1:]):
        box, m = _tube(g, a, b, 12.0)
        _paint(T, box, m, _T["aorta"])
        lungs_box = lungs[box]
        lungs_box[m] = 0

    # -- airways ------------------------------------------------------------------------------------------------
    top = (0.0, -12.0, g.z[-1] + 10.0)
    box, m = _tube(g, top, _CARINA, 9.0)
    _paint(T, box, m, _T["trachea"])
    lungs[box][m] = 0
    # main bronchi: a 2.5 mm soft-tissue wall (never lung) around the lumen, from the carina to the hilum
    walls = {}
    for side, end in _HILA.items():
        r = 7.0 if side == 1 else 6.0
        box, m = _tube(g, _CARINA, end, r + 2.5)
        sub, lb = T[box], lungs[box]
        wall = m & (sub != _T["trachea"])
        sub[wall] = _T["mediastinum"]
        lb[wall] = 0
        walls[side] = np.zeros(g.shape, dtype=bool)
        walls[side][box] = wall
        box, m = _tube(g, _CARINA, end, r)
        T[box][m] = _T["bronchus"]
    inlung = lungs > 0
    T[inlung] = _T["lung"]

    # intrapulmonary (lobar) bronchi from the hilum on: a 2 mm wall and a 2.5 mm lumen, inside the lungs (lung);
    # the lumen crosses the main bronchus's wall (there it is main bronchus), not the hilar vessels
    lobar_targets = {1: [(-62.0, 25.0, 135.0), (-70.0, -20.0, 195.0)], 2: [(70.0, 25.0, 125.0), (66.0, -10.0, 190.0)]}
    for side, end in _HILA.items():
        for tip in lobar_targets[side]:
            box, m = _tube(g, end, tip, 4.5)
            _paint(T, box, m, _T["lobar_wall"], where=inlung)
            box, m = _tube(g, end, tip, 2.5)
            sub = T[box]
            sub[m & inlung[box]] = _T["lobar_lumen"]
            sub[m & walls[side][box] & (sub == _T["mediastinum"])] = _T["bronchus"]

    # vessels: a tree from each hilum: trunks to 4 lobar centres, from each 10 branches to random points of the
    # lung, each with a side twig (radii 5, 3 then 2.2, 1.8 mm)
    flat_lungs = lungs.reshape(-1)

    def lung_points(side, n):
        idx = rng.integers(0, flat_lungs.size, 40 * n)
        idx = idx[flat_lungs[idx] == side][:n]
        kz, ky, kx = np.unravel_index(idx, g.shape)
        return np.c_[g.x[kx], g.y[ky], g.z[kz]]

    def vessel(a, b, r):
        box, m = _tube(g, a, b, r)
        if box is not None:
            sub = T[box]
            sub[m & (sub == _T["lung"])] = _T["vessel"]

    for side, end in _HILA.items():
        root = np.array(end) + np.array([0.0, 6.0, -8.0])
        tips = lung_points(side, 200)
        tips = tips[np.linalg.norm(tips - root, axis=1) > 45.0]
        sign = -1.0 if side == 1 else 1.0
        centres = [
            root + np.array([sign * dx, dy, dz])
            for dx, dy, dz in ((25.0, -25.0, 45.0), (30.0, 25.0, 30.0), (30.0, -25.0, -35.0), (25.0, 30.0, -45.0))
        ]
        for c in centres:
            vessel(root, c, 5.0)
            order = np.argsort(np.linalg.norm(tips - c, axis=1))
            near, tips = tips[order[:10]], tips[order[10:]]
            for tip in near:
                mid = c + 0.5 * (tip - c) + rng.normal(0.0, 5.0, 3)
                vessel(c, mid, 3.0)
                vessel(mid, tip, 2.2)
                vessel(mid, mid + rng.normal(0.0, 20.0, 3), 1.8)

    # -- lesions ------------------------------------------------------------------------------------------------
    sites: dict[str, np.ndarray] = {}
    hu_over = {}
    Z3 = g.z[:, None, None]
    if "ground_glass" in opts.lesions:
        gg = np.zeros(g.shape, dtype=bool)
        for side, (cx, cy, cz, r) in (
            (1, (-85.0, -20.0, 180.0, 22.0)),
            (2, (85.0, 10.0, 200.0, 20.0)),
            (2, (70.0, 45.0, 150.0, 25.0)),
        ):
            box, m = _ellipsoid(g, (cx, cy, cz), (r, r * 1.1, r))
            blob = np.zeros(g.shape, dtype=bool)
            blob[box] = m & (lungs[box] == side) & (T[box] == _T["lung"])  # vessels and bronchi kept
            hu_over[f"ground_glass_{len(hu_over)}"] = (blob, float(rng.uniform(-650.0, -500.0)))
            gg |= blob
        T[gg] = _T["ground_glass"]
        sites["ground_glass"] = gg
    if "recess" in opts.lesions:
        dome3 = dome[None]
        m = (lungs == 1) & (Y[None] > 38.0) & (Z3 < zr_top - 18.0) & (Z3 < dome3 + 40.0)
        sites["recess"] = m
    if "lateral" in opts.lesions:
        box, m = _ellipsoid(g, (_A - _T_CAVITY, 0.0, 165.0), (18.0, 48.0, 38.0))
        full = np.zeros(g.shape, dtype=bool)
        full[box] = m & (lungs[box] == 2)
        sites["lateral"] = full
    if "mediastinal" in opts.lesions:
        box, m = _ellipsoid(g, (-30.0, -8.0, 212.0), (20.0, 32.0, 26.0))
        full = np.zeros(g.shape, dtype=bool)
        full[box] = m & (lungs[box] == 1)
        sites["mediastinal"] = full
    if "perihilar" in opts.lesions:
        box, m = _ellipsoid(g, (-30.0, -5.0, 200.0), (20.0, 34.0, 30.0))
        full = np.zeros(g.shape, dtype=bool)
        full[box] = m & (lungs[box] == 1)
        sites["perihilar"] = full
    for name in ("recess", "lateral", "mediastinal", "perihilar"):
        if name in sites:
            T[sites[name]] = _T["consolidation"]
    lesions = np.zeros(g.shape, dtype=bool)
    for m in sites.values():
        lesions |= m

    # -- arms -----------------------------------------------------------------------------------------------------
    if opts.arms:
        r_arm = 45.0
        for sign in (-1.0, 1.0):
            cx, cy = sign * (_A + opts.arm_gap_mm + r_arm), 10.0
            if opts.arm_gap == "fat":  # fat fills the gap between arm and chest wall
                bridge = _inside_ellipse(X, Y, r_arm + opts.arm_gap_mm + 1.0, r_arm + 8.0, cx - sign * 2, cy) & ~body
                T[:, bridge] = _T["arm_fat"]
            T[:, _inside_ellipse(X, Y, r_arm, r_arm, cx, cy)] = _T["arm_fat"]
            T[:, _inside_ellipse(X, Y, r_arm - 7.0, r_arm - 7.0, cx, cy)] = _T["arm_muscle"]
            T[:, _inside_ellipse(X, Y, 12.0, 12.0, cx, cy + 4.0)] = _T["arm_bone"]
            T[:, _inside_ellipse(X, Y, 8.5, 8.5, cx, cy + 4.0)] = _T["arm_marrow"]

    # -- HU -------------------------------------------------------------------------------------------------------
    lut = _LUT.copy()
    lut[_T["lung"]] = opts.lung_hu
    lut[_T["consolidation"]] = opts.cons_hu
    if opts.contrast:
        lut[_T["heart"]] = lut[_T["aorta"]] = opts.contrast_hu
    hu = lut[T]
    rib = rib_id >= 0
    hu[rib] = rib_hu[rib_id[rib]]
    # dependent lung is denser: +0.15 HU per mm towards the back
    hu += np.where(T == _T["lung"], (0.15 * Y).astype(np.float32)[None], np.float32(0.0))
    for m, v in hu_over.values():
        hu[m] = v
    hu = _image(hu, g.spacing, opts, rng)

    lungs[~np.isin(T, [_T[n] for n in LUNG_TISSUES])] = 0
    levels = {
        "apex": g.zi(_Z_APEX - 15.0),
        "upper": g.zi(_Z_CARINA + 25.0),
        "hilum": g.zi(_HILA[1][2]),
        "heart": g.zi(_HEART[0][2]),
        "dome": g.zi(zr_top - 4.0),
        "recess": g.zi(zr_top - 0.6 * opts.recess_mm),
        "stomach": g.zi(zl_top - 15.0),
    }
    return Phantom(
        hu=hu,
        spacing=g.spacing,
        lungs=lungs,
        lesions=lesions,
        tissue=T,
        sites=sites,
        levels=levels,
        x_mm=g.x,
        y_mm=g.y,
        z_mm=g.z,
        options=asdict(opts),
        info=info,
    )


def _support(T, X, Y, table: str, fov: float, info: dict, depth: float = 0.0) -> None:
    """Paint the support into every slice of T: a flat board (5 mm, 220 HU, 5 mm below the back, or under a gel
    pad of ``depth`` mm), or a curved tray (6 mm normal to its surface) touching the flanks and the lateral image
    edges with a foam mattress (-930 HU) between it and the back (25 mm + ``depth`` under the spine)."""
    if table == "flat":
        support_top = _Y_BACK + 5.0
        if depth > 0:
            # the patient lies on a gel pad (-60 HU) as thick as the pocket is deep, the pocket hollowed in it
            support_top = _Y_BACK + depth
            pad = (Y > _body_bottom(np.clip(X, -_A + 0.01, _A - 0.01))) & (Y < support_top)
            T[:, pad & (np.abs(X) < 140.0)] = _T["cushion"]
        board = (Y >= support_top) & (Y < support_top + 5.0) & (np.abs(X) <= 0.46 * fov)
        T[:, board] = _T["table"]
    elif table == "curved":
        y0 = _Y_BACK + 25.0 + depth  # tray's inner surface under the spine
        xx = np.linspace(1.0, _A - 0.5, 2000)
        c = 1.03 * float(np.min((y0 - _body_bottom(xx)) / xx**2))  # 3 % steeper than tangent: touches the flanks
        y_in = y0 - c * X**2
        tray = (Y >= y_in) & (Y < y_in + 6.0 * np.sqrt(1.0 + (2.0 * c * X) ** 2))
        T[:, tray] = _T["table"]
        # the mattress: what lies between the back and the tray (not the air above the tray's sides)
        under = (Y < y_in) & ~_torso(X, Y) & (Y > 0.0)
        lab, _ = ndimage.label(under)
        keep = np.unique(lab[(np.abs(X) < 5.0) & under])
        T[:, np.isin(lab, keep[keep > 0])] = _T["mattress"]
        info["tray_c"] = c


def _ribs(T, g: _Grid, rng, z_max: float = 1e9, tops=None):
    """Paint discrete ribs (bands 9 mm high in the ring 16-25 mm under the skin, sloping 45 mm down from back to
    front, costal cartilage in the front 30 degrees, none at the sternum); returns (rib index volume, rib HU)."""
    X, Y = g.X, g.Y
    ring = _torso(X, Y, _T_RIB0) & ~_torso(X, Y, _T_RIB1)
    ry, rx = np.nonzero(ring)
    theta = np.arctan2(X[ry, rx], Y[ry, rx])  # 0 posterior, +-pi anterior
    drop = 45.0 * (1.0 - np.cos(theta)) / 2.0
    rib_tops = np.arange(282.0, -60.0, -26.0) if tops is None else np.asarray(tops, float)
    rib_hu = rng.uniform(300.0, 700.0, rib_tops.size).astype(np.float32)
    rib_id = np.full(g.shape, -1, dtype=np.int8)
    anterior = np.abs(theta) > np.deg2rad(150.0)
    sternal = np.abs(X[ry, rx]) < 18.0
    for k, top in enumerate(rib_tops):
        zr = top - drop  # the rib's centre height at each ring pixel
        hit = (np.abs(g.z[:, None] - zr[None, :]) < 4.5) & ~sternal[None, :] & (g.z[:, None] < z_max)
        zk, pk = np.nonzero(hit)
        cart = anterior[pk]
        T[zk, ry[pk], rx[pk]] = np.where(cart, _T["cartilage"], _T["bone"])
        rib_id[zk[~cart], ry[pk[~cart]], rx[pk[~cart]]] = k
    return rib_id, rib_hu


def _spine(T, g: _Grid) -> None:
    """Vertebral bodies (400 HU cortex ring around 250 HU, discs every 27 mm), canal, arch, processes."""
    X, Y = g.X, g.Y
    vb_out = _inside_ellipse(X, Y, 20.0, 17.0, 0.0, 44.0)
    vb_in = _inside_ellipse(X, Y, 16.5, 13.5, 0.0, 44.0)
    canal = _inside_ellipse(X, Y, 8.0, 7.0, 0.0, 70.0)
    arch = _inside_ellipse(X, Y, 14.0, 12.0, 0.0, 71.0) & ~canal & (Y > 62.0)
    arch |= (np.abs(X) < 3.5) & (Y > 80.0) & (Y < 92.0)
    arch |= (np.abs(Y - 64.0) < 4.0) & (np.abs(X) < 30.0) & (np.abs(X) > 8.0)  # transverse processes
    disc = np.mod(g.z, 27.0) < 5.0
    T[:, vb_out] = _T["bone"]
    T[:, vb_in] = np.where(disc, _T["disc"], _T["marrow"]).astype(np.uint8)[:, None]
    dz = np.flatnonzero(disc)
    vy, vx = np.nonzero(vb_out)
    T[dz[:, None], vy[None, :], vx[None, :]] = _T["disc"]
    T[:, arch] = _T["bone"]
    T[:, canal] = _T["csf"]


def _dome(X, Y, zr_top, zl_top, recess_mm):
    """Height (mm) of the diaphragm surface: two domes (peaks at x = -65 and +65, y = -5), steeper laterally than
    medially, deepest posteriorly (the posterior costophrenic recess ``recess_mm`` below the top at y = 80)."""

    def one(z_top, cx):
        lateral = np.abs(X) > abs(cx)
        ddx = np.abs(X - cx)
        fx = np.where(lateral, 38.0 * (ddx / 65.0) ** 2, 14.0 * (ddx / 65.0) ** 2)
        dy = Y + 5.0
        fy = np.where(dy > 0, recess_mm * (dy / 85.0) ** 2, 22.0 * (dy / 85.0) ** 2)
        return z_top - fx - fy

    return np.maximum(one(zr_top, -65.0), one(zl_top, 65.0)).astype(np.float32)


def _ellipse_slice(X, Y, z, centre, semi):
    (cx, cy, cz), (ax, ay, az) = centre, semi
    if abs(z - cz) >= az:
        return np.zeros(X.shape, dtype=bool)
    s = np.sqrt(1.0 - ((z - cz) / az) ** 2)
    return _inside_ellipse(X, Y, ax * s, ay * s, cx, cy)


def _image(hu: np.ndarray, spacing, opts, rng) -> np.ndarray:
    """Reconstruction: soft kernel = white noise added before a Gaussian point-spread function of 1.2 mm sigma
    (noise correlated over about 1.5 voxels, scaled to ``noise_hu`` sd after the blur); sharp kernel = PSF of
    0.7 mm, an unsharp mask (edges overshoot by about 20 %) and white noise of ``sharp_noise_hu`` sd. int16."""
    if getattr(opts, "sharp", False):
        hu = ndimage.gaussian_filter(hu, [0.7 / s for s in spacing], truncate=2.5)
        hu += 0.7 * (hu - ndimage.gaussian_filter(hu, [1.6 / s for s in spacing], truncate=2.0))
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(opts.sharp_noise_hu)
    else:
        sig = [1.2 / s for s in spacing]
        if getattr(opts, "noise_hu", 0) > 0:
            gain = 1.0
            for sg in sig:  # the blur's noise gain along each axis
                impulse = np.zeros(41, dtype=np.float32)
                impulse[20] = 1.0
                gain *= float(np.sqrt(np.sum(ndimage.gaussian_filter1d(impulse, sg, truncate=2.5) ** 2)))
            hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(opts.noise_hu / gain)
        hu = ndimage.gaussian_filter(hu, sig, truncate=2.5)
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16)


# -------------------------------------------------------------------------------------------- scans without lungs
def make_abdomen(
    *,
    gas_ml: float = 300.0,
    table: str = "flat",
    noise_hu: float = 12.0,
    sharp: bool = False,
    sharp_noise_hu: float = 110.0,
    slice_mm: float = 2.5,
    n_xy: int = 160,
    fov_mm: float = 400.0,
    seed: int = 0,
) -> Phantom:
    """Upper abdomen, no lungs and no trachea (250 mm, below the lung bases): the chest's torso and spine with
    the lowest ribs, liver, spleen, stomach (gas anteriorly), kidneys, a colon frame (the transverse colon filled
    with gas first) and small-bowel gas pockets: ``gas_ml`` of gas in all (50-400 ml is usual), the largest piece
    a connected region of up to about 200 ml inside the body."""
    if table not in ("flat", "curved", "none"):
        raise ValueError(f"table must be 'flat', 'curved' or 'none', got {table!r}")
    rng = np.random.default_rng(seed)
    pix, dz = fov_mm / n_xy, float(slice_mm)
    nz = int(round(250.0 / dz))
    g = _Grid((nz, n_xy, n_xy), (dz, pix, pix), (dz / 2.0, -0.43 * fov_mm, -(n_xy - 1) * pix / 2.0))
    X, Y = g.X, g.Y
    T = np.zeros(g.shape, dtype=np.uint8)
    _support(T, X, Y, table, fov_mm, {})
    T[:, _torso(X, Y)] = _T["fat"]
    T[:, _torso(X, Y, _T_FAT)] = _T["muscle"]
    cavity = _torso(X, Y, _T_CAVITY) & ~_spine_block(X, Y)
    rib_id, rib_hu = _ribs(T, g, rng, z_max=250.0, tops=np.arange(300.0, 150.0, -26.0))
    _spine(T, g)
    Z3 = g.z[:, None, None]
    T[:, cavity] = _T["abdomen"]
    organs = [
        ("liver", (-55.0, -5.0, 240.0), (90.0, 85.0, 115.0), lambda box: X[None, box[1], box[2]] < 35.0),
        ("spleen", (90.0, 45.0, 215.0), (28.0, 38.0, 50.0), None),
        ("kidney", (-68.0, 55.0, 105.0), (28.0, 22.0, 55.0), None),
        ("kidney", (68.0, 55.0, 120.0), (28.0, 22.0, 55.0), None),
        ("stomach_wall", (50.0, -30.0, 205.0), (45.0, 40.0, 45.0), None),
        ("stomach_fluid", (50.0, -30.0, 205.0), (41.0, 36.0, 41.0), None),
    ]
    for name, c, semi, extra in organs:
        box, m = _ellipsoid(g, c, semi)
        if box is None:
            continue
        m = m & cavity[None, box[1], box[2]]
        if extra is not None:
            m &= extra(box)
        sub = T[box]
        sub[m] = _T[name]
    box, m = _ellipsoid(g, (50.0, -30.0, 205.0), (41.0, 36.0, 41.0))
    T[box][m & (g.y[None, box[1], None] < -48.0)] = _T["stomach_gas"]
    # colon: ascending, transverse (anterior), descending; wall 3 mm, lumen fluid / gas
    path = [
        (-95.0, 5.0, 10.0),
        (-95.0, -10.0, 150.0),
        (-45.0, -68.0, 160.0),
        (45.0, -68.0, 162.0),
        (95.0, -10.0, 168.0),
        (95.0, 10.0, 10.0),
    ]
    lumen = np.zeros(g.shape, dtype=bool)
    transverse = np.zeros(g.shape, dtype=bool)
    for i, (a, b) in enumerate(zip(path[:-1], path[1:])):
        box, m = _tube(g, a, b, 22.0)
        T[box][m & cavity[None, box[1], box[2]]] = _T["abdomen"]
        box, m = _tube(g, a, b, 19.0)
        m &= cavity[None, box[1], box[2]]
        lumen[box] |= m
        if i in (1, 2, 3):
            transverse[box] |= m
    T[lumen] = _T["abdomen"]
    vox_ml = float(np.prod(g.spacing)) / 1000.0
    # gas: the transverse colon's lumen up to a level (supine: gas anterior), then small pockets
    ys = np.sort(np.broadcast_to(g.y[None, :, None], g.shape)[transverse])
    n_gas = int(min(len(ys), gas_ml * 0.6 / vox_ml))
    gas = transverse & (g.y[None, :, None] < (ys[n_gas - 1] + 1e-3 if n_gas else -1e9))
    T[gas] = _T["colon_gas"]
    total = float(gas.sum()) * vox_ml + float((T == _T["stomach_gas"]).sum()) * vox_ml
    free = (T == _T["abdomen"]) & ~lumen & (Z3 < 150.0)
    tries = 0
    while total < gas_ml and tries < 200:
        tries += 1
        r = float(rng.uniform(7.0, 16.0))
        c = (float(rng.uniform(-70.0, 70.0)), float(rng.uniform(-60.0, 10.0)), float(rng.uniform(20.0, 140.0)))
        box, m = _ellipsoid(g, c, (r, r * 0.8, r))
        if box is None:
            continue
        m &= free[box]
        T[box][m] = _T["bowel_gas"]
        total += float(m.sum()) * vox_ml
    lut = _LUT.copy()
    hu = lut[T]
    rib = rib_id >= 0
    hu[rib] = rib_hu[rib_id[rib]]
    opts = dict(noise_hu=noise_hu, sharp=sharp, sharp_noise_hu=sharp_noise_hu, table=table, gas_ml=gas_ml, seed=seed)
    hu = _image(hu, g.spacing, _Opts(**opts), rng)
    zero = np.zeros(g.shape, dtype=np.uint8)
    return Phantom(
        hu=hu,
        spacing=g.spacing,
        lungs=zero,
        lesions=zero.astype(bool),
        tissue=T,
        levels={"stomach": g.zi(205.0), "kidneys": g.zi(110.0), "colon": g.zi(160.0)},
        x_mm=g.x,
        y_mm=g.y,
        z_mm=g.z,
        options=opts,
        info={"gas_ml": total},
    )


def make_head(
    *,
    air_phantom: bool = False,
    air_ml: float = 900.0,
    noise_hu: float = 12.0,
    sharp: bool = False,
    sharp_noise_hu: float = 110.0,
    slice_mm: float = 2.5,
    n_xy: int = 128,
    fov_mm: float = 260.0,
    seed: int = 0,
) -> Phantom:
    """Head CT (no lungs): scalp, skull (800 HU), brain (35 HU) with ventricles, a face with maxillary, sphenoid,
    frontal and ethmoid sinuses and the nasal cavity (air), mastoid air cells, the neck with the pharynx's air
    column, on a curved head rest with a foam pad. With ``air_phantom=True``: a head-shaped shell with a 7 mm bone
    wall (800 HU; the largest dense object in the scan) holding ``air_ml`` of air (as large as a lung), resting on
    the same head rest."""
    rng = np.random.default_rng(seed)
    pix, dz = fov_mm / n_xy, float(slice_mm)
    nz = int(round(240.0 / dz))
    g = _Grid((nz, n_xy, n_xy), (dz, pix, pix), (dz / 2.0, -0.5 * fov_mm + 10.0, -(n_xy - 1) * pix / 2.0))
    X, Y = g.X, g.Y
    T = np.zeros(g.shape, dtype=np.uint8)
    # head rest: a 4 mm arc (220 HU) under the occiput with a foam pad
    r = np.hypot(X, Y - 5.0)
    T[:, (Y > 60.0) & (r >= 106.0) & (r < 110.0)] = _T["table"]
    T[:, (Y > 60.0) & (r >= 96.0) & (r < 106.0)] = _T["mattress"]
    sites: dict[str, np.ndarray] = {}

    def ell(name, c, semi, where=None):
        box, m = _ellipsoid(g, c, semi)
        if box is None:
            return None, None
        if where is not None:
            m &= where[box]
        T[box][m] = _T[name]
        return box, m

    if air_phantom:
        k = (air_ml * 1000.0 / (4.0 / 3.0 * np.pi * 75.0 * 95.0 * 110.0)) ** (1.0 / 3.0)
        inner = (75.0 * k, 95.0 * k, 110.0 * k)
        cy = 5.0 + 96.0 - inner[1] - 7.0  # resting on the head rest's pad
        ell("skull", (0.0, cy, 120.0), tuple(s + 7.0 for s in inner))
        ell("phantom_air", (0.0, cy, 120.0), inner)
        levels = {"middle": g.zi(120.0), "upper": g.zi(160.0), "lower": g.zi(80.0)}
    else:
        # neck with the cervical spine and the pharynx
        neck = np.broadcast_to(g.z[:, None, None] < 80.0, g.shape) & _inside_ellipse(X, Y, 58.0, 52.0, 0.0, 10.0)[None]
        T[neck] = _T["muscle"]
        for zc in np.arange(5.0, 80.0, 18.0):
            ell("bone", (0.0, 28.0, zc), (14.0, 12.0, 7.0))
        # face and cranium: scalp, skull, brain
        ell("scalp", (0.0, -35.0, 80.0), (62.0, 58.0, 45.0))
        ell("scalp", (0.0, 0.0, 140.0), (76.0, 96.0, 104.0))
        ell("skull", (0.0, 0.0, 140.0), (72.0, 92.0, 100.0))
        ell("brain", (0.0, 0.0, 142.0), (65.0, 85.0, 92.0))
        ell("csf", (-10.0, 0.0, 155.0), (5.0, 25.0, 12.0))
        ell("csf", (10.0, 0.0, 155.0), (5.0, 25.0, 12.0))
        ell("bone", (0.0, -40.0, 75.0), (52.0, 45.0, 30.0))  # facial bones / skull base block
        ell("muscle", (0.0, -40.0, 75.0), (48.0, 41.0, 26.0))
        for sx in (-28.0, 28.0):
            ell("sinus_air", (sx, -55.0, 72.0), (14.0, 16.0, 17.0))  # maxillary
        ell("sinus_air", (0.0, -20.0, 90.0), (12.0, 10.0, 9.0))  # sphenoid
        ell("sinus_air", (0.0, -83.0, 150.0), (14.0, 5.0, 10.0))  # frontal
        box, m = _ellipsoid(g, (0.0, -62.0, 78.0), (6.0, 24.0, 20.0))  # nasal cavity
        T[box][m] = _T["sinus_air"]
        for sx in (-13.0, 13.0):  # ethmoid cells
            for _ in range(6):
                c = (sx + rng.normal(0, 3.0), -62.0 + rng.normal(0, 8.0), 100.0 + rng.normal(0, 6.0))
                ell("sinus_air", c, (3.5, 3.5, 3.5))
        for sx in (-50.0, 50.0):  # mastoid air cells in the temporal bone
            ell("bone", (sx, 22.0, 82.0), (13.0, 14.0, 14.0))
            for _ in range(14):
                c = (sx + rng.normal(0, 5.0), 22.0 + rng.normal(0, 5.0), 82.0 + rng.normal(0, 5.0))
                ell("mastoid_air", c, (2.5, 2.5, 2.5))
        box, m = _tube(g, (0.0, -30.0, 78.0), (0.0, -5.0, -10.0), 9.0)  # pharynx / airway
        T[box][m] = _T["sinus_air"]
        levels = {"sinus": g.zi(72.0), "brain": g.zi(150.0), "neck": g.zi(40.0), "middle": g.zi(120.0)}
    hu = _LUT[T]
    opts = dict(
        air_phantom=air_phantom, air_ml=air_ml, noise_hu=noise_hu, sharp=sharp, sharp_noise_hu=sharp_noise_hu, seed=seed
    )
    hu = _image(hu, g.spacing, _Opts(**opts), rng)
    zero = np.zeros(g.shape, dtype=np.uint8)
    return Phantom(
        hu=hu,
        spacing=g.spacing,
        lungs=zero,
        lesions=zero.astype(bool),
        tissue=T,
        levels=levels,
        x_mm=g.x,
        y_mm=g.y,
        z_mm=g.z,
        options=opts,
        sites=sites,
    )


@dataclass
class _Opts:
    noise_hu: float = 12.0
    sharp: bool = False
    sharp_noise_hu: float = 110.0
    table: str = "flat"
    gas_ml: float = 0.0
    air_phantom: bool = False
    air_ml: float = 0.0
    seed: int = 0


# ----------------------------------------------------------------------------------------------------- pictures
def save_views(phantom: Phantom, path, seg: np.ndarray | None = None, title: str = "", levels=None) -> None:
    """PNG of axial slices (``levels``: names of ``phantom.levels`` or slice indices; default apex, hilum, dome,
    recess), a coronal slice through y = +20 mm and a sagittal one through the right lung (x = -65 mm), window
    -1000..+400 HU; truth lungs outlined in green, ``seg`` (if given) in red, lesions in yellow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = levels or [n for n in ("apex", "hilum", "dome", "recess") if n in phantom.levels] or ["mid"]
    ks = [phantom.levels.get(n, phantom.hu.shape[0] // 2) if isinstance(n, str) else int(n) for n in names]
    dz, dy, dx = phantom.spacing
    yi = int(np.argmin(np.abs(phantom.y_mm - 20.0))) if phantom.y_mm is not None else phantom.hu.shape[1] // 2
    xi = int(np.argmin(np.abs(phantom.x_mm + 65.0))) if phantom.x_mm is not None else phantom.hu.shape[2] // 3
    views = [(f"axial {n} (k={k})", (k, slice(None), slice(None)), dx / dy, False) for n, k in zip(names, ks)]
    views.append(
        (
            f"coronal y={phantom.y_mm[yi]:.0f} mm" if phantom.y_mm is not None else "coronal",
            (slice(None), yi, slice(None)),
            dz / dx,
            True,
        )
    )
    views.append(
        (
            f"sagittal x={phantom.x_mm[xi]:.0f} mm" if phantom.x_mm is not None else "sagittal",
            (slice(None), slice(None), xi),
            dz / dy,
            True,
        )
    )
    ncol = 3
    nrow = -(-len(views) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.0 * ncol, 5.0 * nrow))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes[len(views) :]:
        ax.axis("off")
    for ax, (label, sl, aspect, flip) in zip(axes, views):

        def show(a):
            return a[::-1] if flip else a  # superior up

        ax.imshow(show(phantom.hu[sl]), cmap="gray", vmin=-1000, vmax=400, aspect=aspect, interpolation="nearest")
        for mask, colour in ((phantom.lungs[sl] > 0, "lime"), (phantom.lesions[sl], "yellow")):
            if mask.any():
                ax.contour(show(mask.astype(float)), [0.5], colors=colour, linewidths=0.7)
        if seg is not None and (seg[sl] > 0).any():
            ax.contour(show((seg[sl] > 0).astype(float)), [0.5], colors="red", linewidths=0.7)
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
