"""Ground truth on real chest CT, built without the library's segmentation, shared by ``bench_realct.py`` and
``bench_registration.py``: the reference lung mask (:func:`reference_lungs`), COVID-like lesions inserted into it
(:class:`LesionMaker`) and a known breath-hold deformation of a scan (:func:`breath_hold`, :func:`deform`), with the
small mask and noise helpers they use.

The benchmarks import it as ``import _realct`` (Python puts a script's own folder on ``sys.path``).
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from lungtrial.imaging.registration import Grid, warp


# ----------------------------------------------------------------------------------------------------------------
# small helpers


def ml(mask: np.ndarray, spacing) -> float:
    """Volume of a boolean mask in ml."""
    return float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def bbox(mask: np.ndarray, margin=(0, 0, 0)) -> tuple[slice, ...]:
    """Bounding box slices of a non-empty mask, widened by ``margin`` voxels per axis."""
    out = []
    for axis, m in enumerate(margin):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, idx[0] - m), min(mask.shape[axis], idx[-1] + 1 + m)))
    return tuple(out)


def _img(mask: np.ndarray, spacing=None) -> sitk.Image:
    img = sitk.GetImageFromArray(mask.astype(np.uint8, copy=False))
    if spacing is not None:
        img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    return img


def _radius(mm: float, spacing, planar: bool = False) -> list[int]:
    """SimpleITK kernel radius (x, y, z) in voxels for ``mm``; z is 0 for a per-slice (planar) kernel."""
    dz, dy, dx = spacing
    rz = 0 if planar else max(1, round(mm / dz))
    return [max(1, round(mm / dx)), max(1, round(mm / dy)), rz]


def morph(mask: np.ndarray, op: str, mm: float, spacing, planar: bool = False) -> np.ndarray:
    """Binary dilate/erode/open/close of a (z, y, x) mask with a ball (or a per-slice disk) of radius ``mm``."""
    f = {
        "dilate": sitk.BinaryDilateImageFilter,
        "erode": sitk.BinaryErodeImageFilter,
        "open": sitk.BinaryMorphologicalOpeningImageFilter,
        "close": sitk.BinaryMorphologicalClosingImageFilter,
    }[op]()
    f.SetKernelRadius(_radius(mm, spacing, planar))
    f.SetKernelType(sitk.sitkBall)
    f.SetForegroundValue(1)
    out = f.Execute(_img(mask))
    return sitk.GetArrayViewFromImage(out).astype(bool)


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """Fill holes of every axial slice: background components (4-connected, in-plane) not touching the border."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    lab, n = ndimage.label(~mask, structure)
    border = np.zeros(n + 1, bool)
    for face in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        border[np.unique(face)] = True
    border[0] = True
    return mask | ~border[lab]


def largest_components(mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Label image of the 6-connected components of ``mask`` and their labels, largest first (at most ``k``)."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return lab, np.zeros(0, int)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1][: min(k, n)]
    return lab, order[sizes[order] > 0]


def local_noise_sd(hu: np.ndarray, body: np.ndarray, spacing, nslices: int = 12) -> float:
    """Noise of soft tissue: median over homogeneous soft-tissue pixels (smoothed HU 0..100, 3 mm inside it) of
    the in-plane 5 x 5 local standard deviation, on ``nslices`` evenly spaced slices of the body."""
    zs = np.flatnonzero(body.any(axis=(1, 2)))
    picks = zs[np.linspace(0, len(zs) - 1, min(nslices, len(zs))).round().astype(int)]
    vals = []
    sig = 2.0 / np.asarray(spacing[1:])
    disk = max(1, round(3.0 / spacing[1]))
    for z in picks:
        plane = hu[z].astype(np.float32)
        smooth = ndimage.gaussian_filter(plane, sig)
        soft = ndimage.binary_erosion((smooth > 0) & (smooth < 100) & body[z], iterations=disk)
        if soft.sum() < 200:
            continue
        m = ndimage.uniform_filter(plane, 5)
        m2 = ndimage.uniform_filter(plane * plane, 5)
        vals.append(np.sqrt(np.clip(m2 - m * m, 0, None))[soft])
    return float(np.median(np.concatenate(vals))) if vals else math.nan


def correlated_noise(shape, spacing, sigma_mm: float, rng: np.random.Generator) -> np.ndarray:
    """float32 Gaussian noise, sd 1, correlated in-plane by a Gaussian of ``sigma_mm`` (slices independent)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, (0, sigma_mm / spacing[1], sigma_mm / spacing[2]), output=noise)
    noise /= noise.std()
    return noise


def smooth_field(shape, spacing, sigma_mm: float, rng: np.random.Generator, cell_mm: float = 4.0) -> np.ndarray:
    """float32 smooth random field, sd about 1, correlation ``sigma_mm``: made on a ``cell_mm`` grid, upsampled."""
    coarse = tuple(max(4, math.ceil(n * s / cell_mm) + 2) for n, s in zip(shape, spacing))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma_mm / cell_mm, mode="wrap")
    field /= field.std()
    return ndimage.zoom(
        field,
        [n / c for n, c in zip(shape, coarse)],
        order=1,
        grid_mode=True,
        mode="nearest",
    )[: shape[0], : shape[1], : shape[2]]


# ----------------------------------------------------------------------------------------------------------------
# the reference lung mask


def body_mask(hu: np.ndarray, spacing) -> np.ndarray:
    """Body: largest 6-connected component of HU > -500 after a per-slice opening with a 5 mm disk (cuts off the
    table and the blanket), holes filled per slice."""
    dense = morph(hu > -500, "open", 5.0, spacing, planar=True)
    lab, keep = largest_components(dense, 1)
    if len(keep) == 0:
        return np.zeros(hu.shape, bool)
    return fill_holes_2d(lab == keep[0])


def trachea_seed(air: np.ndarray, hu: np.ndarray, body: np.ndarray, spacing) -> tuple[int, int, int] | None:
    """A voxel in the trachea: in the most superior slices (top 25 % of the body's slices), 2-D components of
    HU < -950 inside the body that are medial (centroid within 15 % of the body width of the body's midline),
    round (filling >= 50 % of their bounding box) and 0.8-6 cm2 large; the first such slice from the top that
    also has one 5 and 10 mm further down: the darkest voxel of its largest candidate."""
    zs = np.flatnonzero(body.any(axis=(1, 2)))
    if len(zs) == 0:
        return None
    dz, dy, dx = spacing
    top = zs[-1]
    px_cm2 = dy * dx / 100.0

    def candidates(z):
        cols = np.flatnonzero(body[z].any(axis=0))
        if len(cols) == 0:
            return []
        mid, width = (cols[0] + cols[-1]) / 2.0, cols[-1] - cols[0]
        lab, _ = ndimage.label((hu[z] < -950) & air[z])
        out = []
        for i, sl in enumerate(ndimage.find_objects(lab), start=1):
            comp = lab[sl] == i
            area = comp.sum() * px_cm2
            if not 0.8 <= area <= 6.0 or comp.sum() < 0.5 * comp.size:
                continue
            cx = ndimage.center_of_mass(comp)[1] + sl[1].start
            if abs(cx - mid) <= 0.15 * width:
                darkest = np.unravel_index(np.argmin(np.where(comp, hu[z][sl], 0)), comp.shape)
                out.append((area, int(darkest[0] + sl[0].start), int(darkest[1] + sl[1].start)))
        return sorted(out, reverse=True)

    lowest = zs[-1] - int(0.25 * len(zs))
    for z in range(top, max(lowest, zs[0]), -1):
        cand = candidates(z)
        if not cand:
            continue
        below = [z - max(1, round(mm / dz)) for mm in (5.0, 10.0)]
        if all(b >= 0 and candidates(b) for b in below):
            return (z, cand[0][1], cand[0][2])
    return None


def grow_airway(hu: np.ndarray, seed, spacing, air: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Trachea and main bronchi: 3-D region growing from ``seed`` through HU below a threshold, the threshold raised
    from -1000 to -900 HU in 10 HU steps while the grown volume stays under 250 ml and does not jump by more than
    50 ml and 2-fold in one step (such a jump is a leak into the parenchyma). Returns the mask, the threshold kept
    and its volume (ml)."""
    img = sitk.GetImageFromArray(np.where(air, hu, 0).astype(np.int16))
    seed_xyz = [(int(seed[2]), int(seed[1]), int(seed[0]))]
    best, best_t, best_v, prev_v = None, None, 0.0, None
    for t in (-1000, -990, -980, -970, -960, -950, -940, -930, -920, -910, -900):
        grown = sitk.ConnectedThreshold(img, seedList=seed_xyz, lower=-3000, upper=t)
        grown = sitk.GetArrayViewFromImage(grown).astype(bool)
        v = ml(grown, spacing)
        if v == 0:
            continue
        if v > 250.0 or (prev_v is not None and v > 2.0 * prev_v and v - prev_v > 50.0):
            break
        best, best_t, best_v, prev_v = grown, t, v, v
    if best is None:
        return np.zeros(hu.shape, bool), 0, 0.0
    return best, best_t, best_v


def split_joined(comp: np.ndarray, spacing, midline: float) -> tuple[np.ndarray, int]:
    """Right (1) / left (2) labels of a component holding both lungs (joined at the anterior or posterior junction
    line, which is fainter than -500 HU in places). Per axial slice, each in-plane (4-connected) part goes to the
    side of the midline holding most of it; a part with >= 15 % on each side and >= 1 cm2 is both lungs, joined
    in that slice: it is eroded in-plane one voxel at a time (at most 30, ~20 mm) until it falls into two parts of
    >= 10 % each on either side of the midline, and each of its voxels goes to the nearer of the two (a straight
    cut at the midline if it never splits). Returns the labels and the number of slices split."""
    box = bbox(comp, (0, 1, 1))
    sub = comp[box]
    mid = round(midline) - box[2].start
    st2 = np.zeros((3, 3, 3), bool)
    st2[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    lab, n = ndimage.label(sub, st2)
    total = np.bincount(lab.ravel(), minlength=n + 1)
    right = np.bincount(lab[:, :, : max(mid, 0)].ravel(), minlength=n + 1)
    share = right / np.maximum(total, 1)
    side = np.where(share > 0.5, 1, 2).astype(np.uint8)
    side[0] = 0
    out_sub = side[lab]
    joined = np.flatnonzero((share >= 0.15) & (share <= 0.85) & (total * spacing[1] * spacing[2] >= 100.0))
    joined = joined[joined > 0]
    objects = ndimage.find_objects(lab)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    for k in joined:
        sl = objects[k - 1]
        z = sl[0].start
        part = lab[z, sl[1], sl[2]] == k
        x_mid = mid - sl[2].start
        eroded = part.copy()
        assigned = None
        for _ in range(30):
            eroded = ndimage.binary_erosion(eroded, cross)
            plab, pn = ndimage.label(eroded, cross)
            if pn < 2:
                if pn == 0:
                    break
                continue
            sizes = np.bincount(plab.ravel())
            sizes[0] = 0
            order = np.argsort(sizes)[::-1][:2]
            if sizes[order[1]] < 0.1 * sizes[order].sum():
                continue
            xs = [ndimage.center_of_mass(plab == q)[1] for q in order]
            if not min(xs) < x_mid < max(xs):
                continue
            seeds = np.zeros(part.shape, np.uint8)
            r, l_ = (order[0], order[1]) if xs[0] < xs[1] else (order[1], order[0])
            seeds[plab == r], seeds[plab == l_] = 1, 2
            _, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
            assigned = seeds[tuple(idx)]
            break
        if assigned is None:  # straight cut at the midline
            assigned = np.broadcast_to(np.where(np.arange(part.shape[1]) < x_mid, 1, 2).astype(np.uint8), part.shape)
        view = out_sub[z, sl[1], sl[2]]
        view[part] = assigned[part]
    out = np.zeros(comp.shape, np.uint8)
    out[box] = out_sub
    return out, len(joined)


def reference_lungs(hu: np.ndarray, spacing) -> tuple[np.ndarray, dict]:
    """Reference lung labels (uint8, 1 right, 2 left), built independently of the library, at full resolution.

    1. Body: :func:`body_mask` (HU > -500, per-slice opening with a 5 mm disk, largest component, holes filled per
       slice).
    2. Air: HU < -500 inside the body.
    3. Airways: the trachea is found in the most superior slices (:func:`trachea_seed`: medial, round, 0.8-6 cm2,
       HU < -950, persisting 10 mm down) and grown in 3-D through the darkest air (:func:`grow_airway`: the
       threshold is raised from -1000 to -900 HU in 10 HU steps while the volume stays < 250 ml and does not jump
       2-fold by > 50 ml: the usual explosion check). This finds the trachea and main/lobar bronchi, whose lumen
       is darker than the parenchyma; they are removed from the air with a 2 mm margin (a ball, at least one
       slice), which also takes their partial-volume rim. Chosen over "remove components touching a trachea
       tube" because it follows the bronchi wherever they run and its leak check is explicit; if no trachea is
       found the step is skipped (said in the table).
    4. Lungs: the largest 6-connected component of the remaining air and the largest other one (>= 10 % of it)
       on the other side of the body midline (x centre of the body). If the largest one straddles the midline
       (>= 15 % of it on each side) it holds both lungs: they are split slice by slice (:func:`split_joined`:
       in-plane erosion of the joined part until it falls in two, then nearest part). Right (label 1) is the side
       of smaller x.
    5. Vessels and nodules: per lung, holes filled per axial slice, then a 3-D closing with a 3 mm ball whose
       additions are kept only where HU < -200, and holes filled per slice again.

    Known limits: dense tissue touching the pleura (a mass or nodule abutting the chest wall or mediastinum, as
    the mass of LIDC-IDRI-0001 where it meets the heart, dependent atelectasis, a consolidation) is left out
    unless enclosed by lung in its slice; hilar vessels and bronchi outside the lung contour are left out, those
    inside it are filled in (a few ml of hilum differ from a manual tracing either way); intrapulmonary bronchi
    removed in step 3 come back only where step 5 encloses them; the lung boundary is the -500 HU iso-surface
    (partial-volume voxels at the pleura count about half); a joined slice that never splits is cut straight at
    the body midline (right/left Dice only, not the total); a lung apex or base at the scan's edge is cut like
    the scan; lungs of a scan without a trachea in its top quarter keep the airways (the table says so). It is a
    threshold method: on lungs with consolidation it is not a truth, which is why lesions are inserted into it.

    Returns the labels and a dict: ``body`` (mask), ``trachea`` (found), ``airway_hu``, ``airway_ml``, ``airway``
    (threshold, volume and mask of the removed airways), ``split`` (slices where the lungs were split).
    """
    dz, dy, dx = spacing
    info: dict = {}
    body = body_mask(hu, spacing)
    info["body"] = body
    air = body & (hu < -500)
    seed = trachea_seed(air, hu, body, spacing)
    info["trachea"] = seed is not None
    if seed is not None:
        airway, t, v = grow_airway(hu, seed, spacing, air)
        info["airway_hu"], info["airway_ml"], info["airway"] = t, v, airway
        if airway.any():
            air &= ~morph(airway, "dilate", 2.0, spacing)
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    midline = (cols[0] + cols[-1]) / 2.0
    lab, keep = largest_components(air, 3)
    lungs = np.zeros(hu.shape, np.uint8)
    info["split"] = 0
    if len(keep) == 0:
        return lungs, info
    sizes = [np.count_nonzero(lab == k) for k in keep]
    sides = []
    for k in keep:
        xcount = (lab == k).sum(axis=(0, 1))
        sides.append(xcount[: int(midline)].sum() / max(1, xcount.sum()))
    if 0.15 <= sides[0] <= 0.85:  # the largest component holds both lungs
        lungs, info["split"] = split_joined(lab == keep[0], spacing, midline)
    else:
        lungs[lab == keep[0]] = 1 if sides[0] > 0.5 else 2
        for k, size, share in zip(keep[1:], sizes[1:], sides[1:]):  # the largest on the other side
            other = 1 if share > 0.5 else 2
            if size >= 0.1 * sizes[0] and not (lungs == other).any() and (share < 0.15 or share > 0.85):
                lungs[lab == k] = other
                break
    del lab
    # fill vessels and nodules, per lung, inside its bounding box
    margin = (max(2, round(4.0 / dz)), round(6.0 / dy), round(6.0 / dx))
    out = np.zeros(hu.shape, np.uint8)
    for side in (1, 2):
        m = lungs == side
        if not m.any():
            continue
        box = bbox(m, margin)
        sub = fill_holes_2d(m[box])
        closed = morph(sub, "close", 3.0, spacing)
        sub = fill_holes_2d(sub | (closed & (hu[box] < -200)))
        region = out[box]
        region[sub & (region == 0)] = side
    return out, info


# ----------------------------------------------------------------------------------------------------------------
# inserted lesions


class LesionMaker:
    """Places COVID-like lesions inside the reference lungs (see the module docstring); fields are computed once per
    scan on the lungs' bounding box."""

    def __init__(self, hu, ref, body, spacing, rng):
        self.hu, self.spacing, self.rng = hu, np.asarray(spacing), rng
        self.box = bbox(ref > 0, (2, 4, 4))
        self.ref = ref[self.box]
        lung = self.ref > 0
        self.lung = lung
        dist = sitk.SignedMaurerDistanceMap(
            _img(np.pad(lung, 1), spacing),
            insideIsPositive=True,
            squaredDistance=False,
            useImageSpacing=True,
        )
        self.depth = sitk.GetArrayFromImage(dist)[1:-1, 1:-1, 1:-1].astype(np.float32)  # mm to the pleura
        zz, yy, xx = (np.arange(n, dtype=np.float32) * s for n, s in zip(lung.shape, spacing))
        self.z_mm, self.y_mm, self.x_mm = (
            zz[:, None, None],
            yy[None, :, None],
            xx[None, None, :],
        )
        # per-lung normalised coordinates: posterior, basal, lateral, in -1..1 over each lung's extent
        self.post = np.zeros(lung.shape, np.float32)
        self.basal = np.zeros(lung.shape, np.float32)
        self.lateral = np.zeros(lung.shape, np.float32)
        for side in (1, 2):
            m = self.ref == side
            if not m.any():
                continue
            b = bbox(m)
            c = [(s.start + s.stop - 1) / 2.0 for s in b]
            h = [max(1.0, (s.stop - s.start) / 2.0) for s in b]
            zi, yi, xi = (np.arange(n, dtype=np.float32) for n in lung.shape)
            self.post[m] = np.broadcast_to(((yi - c[1]) / h[1])[None, :, None], lung.shape)[m]
            self.basal[m] = np.broadcast_to(((c[0] - zi) / h[0])[:, None, None], lung.shape)[m]
            sign = -1.0 if side == 1 else 1.0
            self.lateral[m] = np.broadcast_to((sign * (xi - c[2]) / h[2])[None, None, :], lung.shape)[m]
        # density of the chest wall: soft tissue 2-8 mm outside the lung
        sub = hu[self.box]
        shell = morph(lung, "dilate", 8.0, spacing) & ~morph(lung, "dilate", 2.0, spacing) & body[self.box]
        soft = sub[shell & (sub > -20) & (sub < 150)]  # muscle and other soft tissue, not fat or bone
        self.wall_hu = float(np.median(soft)) if soft.size else 40.0
        self.noise_sd = local_noise_sd(hu, body, spacing)
        self.parenchyma = float(np.median(sub[lung & (sub < -500)]))
        self.voxel_ml = float(np.prod(spacing)) / 1000.0
        self.ref_n = int(np.count_nonzero(lung))

    def _top(self, score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` allowed voxels of highest score (a level set of a smooth score: a smooth-edged region)."""
        vals = score[allowed]
        n = int(min(max(n, 0), vals.size))
        if n == 0:
            return np.zeros(score.shape, bool)
        q = np.partition(vals, vals.size - n)[vals.size - n]
        return allowed & (score >= q)

    def _touching(self, mask: np.ndarray) -> np.ndarray:
        """Components of ``mask`` that touch the pleura (a voxel within 1.5 voxels of the lung surface)."""
        lab, n = ndimage.label(mask)
        if n == 0:
            return mask
        near = self.depth <= 1.5 * float(self.spacing[1:].max())
        touch = np.zeros(n + 1, bool)
        touch[np.unique(lab[mask & near])] = True
        touch[0] = False
        return touch[lab]

    def ground_glass(self, fraction: float, allowed: np.ndarray) -> np.ndarray:
        """Subpleural smooth blobs favouring posterior, basal and lateral (costal) lung: the top ``fraction`` of
        lung voxels by -depth/8 mm + 0.8 posterior + 0.8 basal + 0.5 lateral + 1.5 x a smooth random field (12 mm),
        only the blobs that touch the pleura kept."""
        field = smooth_field(self.lung.shape, self.spacing, 12.0, self.rng)
        score = -self.depth / 8.0 + 0.8 * self.post + 0.8 * self.basal + 0.5 * self.lateral + 1.5 * field
        return self._touching(self._top(score, allowed, round(fraction * self.ref_n)))

    def consolidation(self, fraction: float, allowed: np.ndarray) -> np.ndarray:
        """60 %: dependent filling of the posterior costophrenic recesses of each lung (level -z + 0.8 y: lowest and
        most posterior first, with a smooth random 6 mm wobble); 40 %: a band along the lateral chest wall (lateral
        half of each lung), thickest basally."""
        n = round(fraction * self.ref_n)
        wobble = smooth_field(self.lung.shape, self.spacing, 15.0, self.rng)
        level = -self.z_mm + 0.8 * self.y_mm + 6.0 * wobble
        recess = np.zeros(self.lung.shape, bool)
        for side in (1, 2):  # each lung gets its share
            m = allowed & (self.ref == side)
            share = np.count_nonzero(self.ref == side) / self.ref_n
            recess |= self._top(
                np.where(m, level, -np.inf).astype(np.float32),
                m,
                round(0.6 * n * share),
            )
        band_score = -self.depth + 12.0 * self.lateral + 6.0 * self.basal + 4.0 * wobble
        band = self._top(
            band_score,
            allowed & ~recess & (self.lateral > 0.0),
            n - int(np.count_nonzero(recess)),
        )
        return self._touching(recess | band)

    def _weight(self, mask: np.ndarray) -> np.ndarray:
        """Blend weight of a lesion: its mask blurred in-plane (sigma 0.6 mm, the partial volume of a soft kernel),
        inside the lung only; >= 0.5 on the lesion voxels, < 0.5 outside them."""
        sp = self.spacing
        w = ndimage.gaussian_filter(mask.astype(np.float32), (0, 0.6 / sp[1], 0.6 / sp[2]))
        w[~self.lung] = 0.0
        return w

    def insert(self, kind: str, burden_pct: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lesion scan (full int16 volume), ground-glass and consolidation voxels (full-size bool)."""
        frac = burden_pct / 100.0
        cons = np.zeros(self.lung.shape, bool)
        ggo = np.zeros(self.lung.shape, bool)
        if kind in ("cons", "mix"):
            cons = self.consolidation(frac if kind == "cons" else frac / 2, self.lung)
        if kind in ("ggo", "mix"):
            ggo = self.ground_glass(frac if kind == "ggo" else frac / 2, self.lung & ~cons)
        sub = self.hu[self.box].astype(np.float32)
        sp = self.spacing
        out = sub.copy()
        if ggo.any():
            # the air spaces filled: each voxel's air fraction (1 in parenchyma, 0 in vessels and the wall, in
            # between in their partial-volume edges) raised from the parenchyma's HU to about -650..-500 HU. The
            # fraction is read from HU smoothed in-plane (0.7 mm, about a soft kernel's point spread), so that the
            # scanner's noise stays additive: texture and noise kept
            level = -575.0 + 50.0 * np.clip(smooth_field(self.lung.shape, sp, 10.0, self.rng), -1.5, 1.5)
            tissue = ndimage.gaussian_filter(sub, (0.0, 0.7 / sp[1], 0.7 / sp[2]))
            air = np.clip((self.wall_hu - tissue) / (self.wall_hu - self.parenchyma), 0.0, 1.0)
            del tissue
            out += self._weight(ggo) * air * (level - self.parenchyma)
        if cons.any():
            value = self.wall_hu + self.noise_sd * correlated_noise(self.lung.shape, sp, 0.5, self.rng)
            w = self._weight(cons)
            out = out * (1.0 - w) + value * w
        vol = self.hu.copy()
        vol[self.box] = np.clip(np.rint(out), -1024, 3071).astype(np.int16)
        full_g = np.zeros(self.hu.shape, bool)
        full_c = np.zeros(self.hu.shape, bool)
        full_g[self.box], full_c[self.box] = ggo, cons
        return vol, full_g, full_c


# ----------------------------------------------------------------------------------------------------------------
# the known deformation


def breath_hold(lungs: np.ndarray, grid: Grid, rng: np.random.Generator, amplitude_mm: float, cell_mm: float = 4.0):
    """Displacement field transform ``y -> y + g(y)`` on a ``cell_mm`` grid over the volume (see the module
    docstring) and the displacement at the lung bases (95th percentile of |g| in the lowest fifth of the lungs)."""
    sp = np.asarray(grid.spacing)
    ext = np.asarray(grid.shape) * sp
    cshape = tuple(math.ceil(e / cell_mm) + 2 for e in ext)  # (z, y, x)
    zz, yy, xx = np.meshgrid(*[np.arange(n) * cell_mm for n in cshape], indexing="ij")
    lz = np.flatnonzero(lungs.any(axis=(1, 2)))
    z0, z1 = lz[0] * sp[0], lz[-1] * sp[0]
    s = np.clip((z1 - zz) / (z1 - z0), 0, 1)
    s = 0.5 - 0.5 * np.cos(np.pi * s)  # 0 at the apex, 1 at the base
    small = ndimage.zoom((lungs > 0).astype(np.float32), [c / n for c, n in zip(cshape, grid.shape)], order=1)
    small = np.pad(small, [(0, max(0, c - n)) for c, n in zip(cshape, small.shape)])[
        : cshape[0], : cshape[1], : cshape[2]
    ]
    w = ndimage.gaussian_filter(small, 10.0 / cell_mm)
    w = np.clip(w / max(float(w.max()), 1e-6) * 1.6, 0, 1)  # 1 inside the lungs, fading into the wall
    g = np.zeros((*cshape, 3))
    g[..., 2] = -amplitude_mm * s * w
    g[..., 1] = -amplitude_mm / 3 * s * w
    for k in range(3):
        r = ndimage.gaussian_filter(rng.standard_normal(cshape), 30.0 / cell_mm, mode="wrap")
        g[..., k] += 2.0 * r / r.std() * w
    base_mag = np.linalg.norm(g, axis=-1)[(w > 0.9) & (s > 0.8)]
    c = np.array([ext[2] / 2, ext[1] / 2, (z0 + z1) / 2])
    theta = np.deg2rad(3.0)
    rot = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    p = np.stack([xx, yy, zz], -1) - c
    g += p @ rot.T - p + np.array([6.0, -4.0, 6.0])
    img = sitk.GetImageFromArray(g, isVector=True)
    img.SetSpacing((cell_mm,) * 3)
    img.SetOrigin(grid.origin)
    img.SetDirection(grid.direction)
    return sitk.DisplacementFieldTransform(img), float(np.percentile(base_mag, 95)) if base_mag.size else math.nan


def deform(hu: np.ndarray, lungs: np.ndarray, grid: Grid, field) -> tuple[np.ndarray, np.ndarray]:
    """The follow-up ``hu(y + g(y))`` and its true lung labels."""
    return warp(hu, grid, grid, field, kind="linear", default=-1024), warp(lungs, grid, grid, field, kind="nearest")
