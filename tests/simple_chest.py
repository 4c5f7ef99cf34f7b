"""The small analytic chest of the segmentation tests (not the demo generator): it varies what a generator usually
keeps fixed -- patient offset and rotation, lung density, slice thickness, lungs touching at the junction, a hollow
table, bowel gas, lesions against the chest wall -- and the measures the tests use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class Chest:
    hu: np.ndarray
    spacing: tuple[float, float, float]
    lungs: np.ndarray  # truth labels 0/1/2
    lesions: np.ndarray  # truth bool, inside the lungs
    vessels: np.ndarray  # truth bool, inside the lungs
    airway: np.ndarray  # truth bool (trachea + main bronchi)
    trachea: np.ndarray  # truth bool, down to 5 mm above the carina
    outside: np.ndarray  # bool: table, outside air, bowel gas


def tube(xr, yr, z, a, b, r):
    """Mask of the points within r (mm) of segment a-b, given patient-frame x, y (2D) and z (1D) coordinates."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = np.zeros((z.size,) + xr.shape, dtype=bool)
    lo, hi = np.minimum(a, b) - r, np.maximum(a, b) + r
    ks = np.flatnonzero((z >= lo[2]) & (z <= hi[2]))
    inside = (xr >= lo[0]) & (xr <= hi[0]) & (yr >= lo[1]) & (yr <= hi[1])
    if ks.size == 0 or not inside.any():
        return out
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    box = (slice(ks[0], ks[-1] + 1), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    px, py, pz = xr[box[1:]][None], yr[box[1:]][None], z[box[0], None, None]
    ab = b - a
    t = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1] + (pz - a[2]) * ab[2]) / (ab @ ab), 0, 1)
    d2 = (px - a[0] - t * ab[0]) ** 2 + (py - a[1] - t * ab[1]) ** 2 + (pz - a[2] - t * ab[2]) ** 2
    out[box] = d2 <= r * r
    return out


def make_simple_chest(
    spacing=(2.5, 1.5, 1.5),
    offset_x=0.0,
    rotation_deg=0.0,
    lung_hu=-850.0,
    noise=20.0,
    lung_gap=12.0,
    lesions=True,
    sites=(),
    seed=0,
    cons_hu=-30.0,
    fat_pad=False,
) -> Chest:
    """Chest phantom in (z, y, x), x to the patient's left, y posterior, z superior; HU int16."""
    rng = np.random.default_rng(seed)
    dz, dy, dx = spacing
    shape = (int(260 / dz), int(280 / dy), int(360 / dx))
    z = (np.arange(shape[0]) * dz)[:, None, None]
    y = (np.arange(shape[1]) * dy - 140.0)[None, :, None]
    x = (np.arange(shape[2]) * dx - 180.0)[None, None, :]
    th = np.deg2rad(rotation_deg)
    xr = np.cos(th) * (x - offset_x) + np.sin(th) * y  # patient frame
    yr = -np.sin(th) * (x - offset_x) + np.cos(th) * y
    zz, yy, xx = np.broadcast_arrays(z, yr, xr)
    xr2, yr2, z1 = np.broadcast_to(xr[0], shape[1:]), np.broadcast_to(yr[0], shape[1:]), z.ravel()

    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = (xr / 150.0) ** 2 + (yr / 100.0) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = 40.0
    # ribs: bony arcs inside the body wall every 25 mm
    ring = ((xr / 140.0) ** 2 + (yr / 90.0) ** 2 <= 1.0) & ((xr / 133.0) ** 2 + (yr / 84.0) ** 2 > 1.0)
    ribs = ring & (np.mod(z, 25.0) < 9.0) & (yr > -60)
    hu[np.broadcast_to(ribs, shape)] = 500.0
    # spine
    spine = np.broadcast_to(((xr / 18.0) ** 2 + ((yr - 62.0) / 18.0) ** 2) <= 1.0, shape)
    hu[spine] = 400.0
    # hollow table, 15 mm below the back, separated by air
    table_shell = np.broadcast_to((np.abs(xr) < 170) & (yr > 108) & (yr < 128), shape)
    table_air = np.broadcast_to((np.abs(xr) < 165) & (yr > 111) & (yr < 125), shape)
    hu[table_shell] = 300.0
    hu[table_air] = -1000.0

    half = lung_gap / 2.0
    lungs = np.zeros(shape, dtype=np.uint8)
    for label, sign in ((1, -1.0), (2, 1.0)):
        cx = sign * (half + 60.0)
        e = ((xx - cx) / 60.0) ** 2 + ((yy + 5.0) / 72.0) ** 2 + ((zz - 150.0) / 100.0) ** 2 <= 1.0
        e &= zz > 70.0 + 25.0 * (1 - ((xx - cx) / 60.0) ** 2)  # diaphragm dome cuts the base
        lungs[e & (lungs == 0)] = label
    # the two lungs touch at the anterior junction when lung_gap < 0: split by the midline
    lungs[(lungs > 0) & (xx < 0)] = 1
    lungs[(lungs > 0) & (xx >= 0)] = 2
    inlung = lungs > 0
    hu[inlung] = lung_hu

    carina = (0.0, -25.0, 200.0)
    airway = tube(xr2, yr2, z1, (0.0, -25.0, 300.0), carina, 9.0)
    trachea = airway & (zz > carina[2] + 5.0)
    for sign in (-1.0, 1.0):
        airway |= tube(xr2, yr2, z1, carina, (sign * (half + 25.0), -15.0, 180.0), 6.0)
    airway &= ~inlung
    hu[airway] = -1000.0

    vessels = np.zeros(shape, dtype=bool)
    for sign in (-1.0, 1.0):
        cx = sign * (half + 60.0)
        root = (sign * (half + 15.0), 0.0, 165.0)
        for k, (ex, ey, ez) in enumerate([(45, -40, 220), (50, 30, 110), (20, 50, 200), (40, 0, 130), (30, -50, 150)]):
            tip = (cx + sign * (ex - 30.0), ey, ez)
            vessels |= tube(xr2, yr2, z1, root, tip, 3.0 - 0.3 * k)
    vessels &= inlung
    hu[vessels] = 40.0

    lesion = np.zeros(shape, dtype=bool)
    if lesions:
        # consolidation against the right lateral chest wall
        lesion |= ((xx + half + 115.0) ** 2 + yy**2 + (zz - 150.0) ** 2) <= 28.0**2
        # ground glass against the left posterior chest wall
        lesion |= ((xx - half - 60.0) ** 2 + ((yy - 60.0) / 1.2) ** 2 + (zz - 130.0) ** 2) <= 25.0**2
        lesion &= inlung
        cons = lesion & (xx < 0)
        hu[cons] = -20.0
        hu[lesion & ~cons] = -480.0
    # ground glass (-550 HU) around a consolidation core (10 HU), as COVID-19 lesions usually are:
    # "mediastinal" against the medial border of the right lung, "dome" resting on the left diaphragm dome
    centres = {"mediastinal": (-half - 8.0, 10.0, 150.0), "dome": (half + 60.0, -5.0, 100.0)}
    for site in (s for s in sites if s in centres):
        cx, cy, cz = centres[site]
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2
        glass = (r2 <= 30.0**2) & inlung
        core = (r2 <= 18.0**2) & inlung
        hu[glass] = -550.0
        hu[core] = 10.0
        lesion |= glass
    # consolidation (cons_hu, no ground glass around it) filling the posterior-basal recess of the right lung, down
    # to the dome and against the posterior chest wall; or the posterior-medial base of the left lung, against the
    # spine and the mediastinum
    # (dependent consolidation: it also bulges up into the lung, where the lung's outline reveals it)
    bulge_r = (xx + half + 60.0) ** 2 + (yy - 35.0) ** 2 + (zz - 120.0) ** 2 <= 30.0**2
    bulge_l = (xx - half - 35.0) ** 2 + (yy - 25.0) ** 2 + (zz - 130.0) ** 2 <= 28.0**2
    regions = {
        "recess": (lungs == 1) & (((zz < 115.0) & (yy > 15.0)) | bulge_r),
        "paravertebral": (lungs == 2) & (((zz < 125.0) & (yy > 0.0) & (xx < half + 40.0)) | bulge_l),
    }
    for site in sites:
        if site in regions:
            hu[regions[site]] = cons_hu
            lesion |= regions[site]
    fat = np.zeros(shape, dtype=bool)
    if fat_pad:
        # a fat pad (-100 HU) against the medial base of the right lung, beside the spine, under the heart
        fat = ((xx + half + 10.0) ** 2 + (yy - 25.0) ** 2 + (zz - 100.0) ** 2 <= 22.0**2) & ~inlung
        fat &= ~spine & np.broadcast_to(body, shape)
        hu[fat] = -100.0
    # bowel gas under the left diaphragm, 8 mm below the lung
    gas = ((xx - half - 60.0) / 35.0) ** 2 + ((yy + 10.0) / 30.0) ** 2 + ((zz - 40.0) / 20.0) ** 2 <= 1.0
    hu[gas] = -1000.0

    sig = [max(0.0, 0.8 / s) for s in spacing]
    hu = ndimage.gaussian_filter(hu, sig)
    hu += rng.normal(0.0, noise, shape).astype(np.float32)
    outside = (~body) | gas | fat
    return Chest(np.round(hu).astype(np.int16), tuple(spacing), lungs, lesion, vessels, airway, trachea, outside)


def dice(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def opacity_pct(hu, lungs, excluded):
    """Percentage of lung voxels in ground glass or consolidation (-700 to +100 HU), excluded voxels not opacity."""
    inl = lungs > 0
    op = inl & (hu >= -700) & (hu <= 100) & ~excluded
    return 100.0 * op.sum() / inl.sum()


def correlated_noise(chest, sd_hu: float, corr_mm: float, seed: int):
    """``chest`` with Gaussian noise of ``sd_hu`` (HU) smoothed over ``corr_mm`` (mm, Gaussian sigma) added."""
    rng = np.random.default_rng(seed)
    n = rng.normal(0.0, 1.0, chest.hu.shape).astype(np.float32)
    n = ndimage.gaussian_filter(n, [corr_mm / s for s in chest.spacing])
    n *= sd_hu / n.std()
    chest.hu = np.clip(np.round(chest.hu + n), -1024, 3000).astype(np.int16)
    return chest
