"""Lesion repair on the coarse grid: pockets between the lung and its convex hull, consolidation continued by its
density."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungtrial import parallel
from lungtrial.imaging._arrays import fill_holes_2d

from ._grid import (
    _CROSS,
    _FAR,
    _HULL_DIRECTIONS,
    _PLANE4,
    _PLANE8,
    BONE_HU,
    FAT_FLOOR_HU,
    HAZY_HU,
    LEFT,
    RIGHT,
    _bbox,
    _dilate,
    _edt,
    _erode,
    _grey_grow,
    _open,
    _plane_grow,
    _plane_shrink,
    _robust_sd,
    _tissue_mean,
)


def _hull_planes(lung: np.ndarray, pix) -> np.ndarray:
    """Convex hull of the lung pixels of every plane (axis 0) at once (bool).

    The hull of the pixels (each a diamond reaching half a pixel along the axes, as scikit-image's
    ``convex_hull_image``) is approximated by the intersection of ``_HULL_DIRECTIONS`` half-planes of evenly
    spaced orientations, each through the lung's extreme pixel in its direction (a discrete-orientation polytope;
    with 128 sides it exceeds the true hull by a sliver at its corners). Only the first and
    last lung pixel of each row matter, and each row of the hull is an interval, so the work is on (planes, rows)
    arrays except for the final comparison.
    """
    n, nr, nc = lung.shape
    p0, p1 = float(pix[0]), float(pix[1])
    rowany = lung.any(axis=2)
    f32 = np.float32
    cmin = (lung.argmax(axis=2) * p1).astype(f32)
    cmax = ((nc - 1 - lung[:, :, ::-1].argmax(axis=2)) * p1).astype(f32)
    cmin[~rowany] = np.nan  # empty rows support nothing
    cmax[~rowany] = np.nan
    th = np.arange(_HULL_DIRECTIONS) * (2.0 * np.pi / _HULL_DIRECTIONS)
    ca, sa = np.cos(th), np.sin(th)
    ca[np.abs(ca) < 1e-12] = 0.0
    sa[np.abs(sa) < 1e-12] = 0.0
    c3, s3 = ca.astype(f32)[:, None, None], sa.astype(f32)[:, None, None]
    cr = c3 * (np.arange(nr, dtype=f32) * f32(p0))[None, None, :]  # (directions, 1, rows)
    # support of each direction: the extreme row end, plus the half-pixel diamond around its centre
    ext = np.where((sa >= 0)[:, None, None], cmax[None], cmin[None])  # the row end furthest along the direction
    proj = cr + s3 * ext
    proj[np.isnan(proj)] = -np.inf
    mx = proj.max(axis=2)
    mx += (0.5 * np.maximum(np.abs(ca) * p0, np.abs(sa) * p1)).astype(f32)[:, None]
    bound = mx[:, :, None] - cr  # (directions, planes, rows): ca * r + sa * c <= mx
    eps = 1e-4
    rowok = np.all((bound[sa == 0.0] + eps) >= 0.0, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        hi = np.min(bound[sa > 0] / s3[sa > 0], axis=0)
        lo = np.max(bound[sa < 0] / s3[sa < 0], axis=0)
    cc = (np.arange(nc) * p1)[None, None, :]
    hull = (cc >= lo[:, :, None] - eps) & (cc <= hi[:, :, None] + eps)
    hull &= rowok[:, :, None]
    hull &= rowany.any(axis=1)[:, None, None]
    return hull


def _pockets(
    lung: np.ndarray,
    allowed: np.ndarray,
    depth: np.ndarray,
    pix: tuple[float, float],
    wall_mm: float,
    hu: np.ndarray,
    support: np.ndarray,
    near_needs_support: bool,
    medial: tuple[float, float] | None = None,
    lined_mm: float = 20.0,
    parts: dict | None = None,
) -> np.ndarray:
    """Lesion pockets of one lung in all the planes ``lung[k]`` at once (bool, same shape as ``lung``).

    A pocket is a region between the lung and its convex hull in one plane; its chord is the part of its outline on
    the hull. ``depth`` is the distance (mm) below the skin and ``hu`` the coarse HU volume, both in the same planes.

    - A lesion against the chest wall leaves a pocket whose chord runs along the chest wall: at most
      ``wall_mm`` + 35 mm below the skin, with ends at most ``wall_mm`` + 25 mm deep, and no deeper than its deeper
      end plus 4 mm and the sagitta of a 150 mm radius body outline over the chord. Pockets of the mediastinum,
      heart, spine or liver dome have chords through the depth of the body. In axial planes (``medial``: the
      medial unit vector in plane coordinates) pockets medial of the lung's centre are rejected as well (and are
      returned in ``parts["medial"]``, so that :func:`_repair` keeps the chord pockets of the coronal and sagittal
      planes, ``parts["chord"]``, grown across their chord, out of them). A pocket
      lying entirely on the hull's outline (one coarse voxel thick) is the staircase of a convex surface on the
      grid, not a lesion, and is rejected too.
    - Of a pocket rejected so, at least a quarter hazy (-650 to -250 HU, away from the lung's partial-volume edge:
      ground glass, never solid tissue), the ground glass and what lies within 6 mm of it (the consolidation it
      surrounds) are added.
    - Of a rejected pocket whose outline is lined by the lung's own ground glass (-650 to -250 HU, at least three
      coarse voxels thick in the plane: not the partial-volume edge), what lies within 6 mm of that ground glass
      where it lines a quarter of the outline (only voxels with ``support`` if ``near_needs_support``), and within
      ``lined_mm`` where it lines half of it, the pocket
      reaches at most ``lined_mm`` behind its chord and the voxel has ``support``: consolidation within its
      ground glass, also against the mediastinum. ``support`` marks the voxels with this lung at most 40 mm
      below them, which the liver under the dome lacks; the heart lies behind aerated lung.
    - In axial planes, holes enclosed by the lung (vessels, lesions) are added.

    Accepted chord pockets grow across the chord, which cuts off the pleural cap of the lesion, up to the chest
    wall: tissue no shallower than the chord ends, within the sagitta of a 100 mm radius pleura over the chord.
    """
    p0, p1 = float(pix[0]), float(pix[1])
    out = np.zeros(lung.shape, dtype=bool)
    big = lung.sum(axis=(1, 2)) * (p0 * p1) >= 40.0  # mm^2: planes that merely graze the lung have no hull
    if not big.any():
        return out
    lung = lung & big[:, None, None]
    hull = _hull_planes(lung, pix)
    pocket = hull & ~lung & allowed
    lab, n = ndimage.label(pocket, structure=_PLANE4)
    if n == 0:
        return out
    rim = hull & ~_erode(hull, _PLANE4)
    chord = np.where(rim, lab, 0)
    near_lung = _dilate(lung, _PLANE8)
    # per-pocket statistics over the pocket voxels only
    pidx = np.flatnonzero(lab)
    plab = lab.ravel()[pidx]
    on_rim = rim.ravel()[pidx]
    on_end = on_rim & near_lung.ravel()[pidx]
    pdepth = depth.ravel()[pidx]
    dmax = np.full(n + 1, -np.inf)
    np.maximum.at(dmax, plab[on_rim], pdepth[on_rim])
    dend = np.full(n + 1, -np.inf)
    np.maximum.at(dend, plab[on_end], pdepth[on_end])
    dmax, dend = dmax[1:], np.maximum(dend[1:], 0.0)
    has_chord = np.bincount(plab[on_rim], minlength=n + 1)[1:] > 0
    objs = ndimage.find_objects(chord, max_label=n)
    span = np.zeros((n, 2))
    for i, o in enumerate(objs):
        if o is not None:
            span[i] = ((o[1].stop - o[1].start) * p0, (o[2].stop - o[2].start) * p1)
    length = np.hypot(span[:, 0], span[:, 1])
    # a pocket that lies entirely on the hull's outline (one coarse voxel thick) is the staircase of a convex
    # surface on the coarse grid, not a lesion: the full-resolution threshold decides there
    thick = np.bincount(plab[~on_rim], minlength=n + 1)[1:] > 0
    ok = (
        has_chord
        & thick
        & (dmax - dend <= 4.0 + length**2 / (8.0 * 150.0))
        & (dmax <= wall_mm + 35.0)
        & (dend <= wall_mm + 25.0)
    )
    count = np.maximum(np.bincount(plab, minlength=n + 1)[1:], 1)
    # ground glass away from the lung's partial-volume edge
    hazy = (hu > -650.0) & (hu < -250.0) & ~near_lung
    frac = np.bincount(plab, weights=hazy.ravel()[pidx], minlength=n + 1)[1:] / count
    if medial is not None:
        plane_size = lung.shape[1] * lung.shape[2]
        plane_of = np.zeros(n + 1, dtype=np.intp)
        plane_of[plab] = pidx // plane_size
        n_lung = np.maximum(lung.sum(axis=(1, 2)), 1)
        lr = (lung.sum(axis=2) * np.arange(lung.shape[1])).sum(axis=1) / n_lung
        lc = (lung.sum(axis=1) * np.arange(lung.shape[2])).sum(axis=1) / n_lung
        pr = np.bincount(plab, weights=(pidx % plane_size) // lung.shape[2], minlength=n + 1)[1:] / count
        pc = np.bincount(plab, weights=pidx % lung.shape[2], minlength=n + 1)[1:] / count
        vr = (pr - lr[plane_of[1:]]) * p0
        vc = (pc - lc[plane_of[1:]]) * p1
        lateral = vr * medial[0] + vc * medial[1] < 0.5 * np.hypot(vr, vc)
        if parts is not None:
            parts["medial"] = np.concatenate([[False], has_chord & ~lateral])[lab]
        ok &= lateral
        ok |= ~has_chord
    keep = np.concatenate([[False], ok])[lab]
    out |= keep
    # hazy pockets: their ground glass and what lies within 6 mm of it (the consolidation it surrounds)
    hazy_pocket = np.concatenate([[False], ~ok & (frac >= 0.25)])[lab]
    if hazy_pocket.any():
        steps = max(1, int(round(6.0 / min(p0, p1))))
        out |= _dilate(hazy & hazy_pocket, _PLANE4, iterations=steps, within=hazy_pocket)
    # pockets lined by the lung's own ground glass (not the partial-volume edge)
    if not ok.all():
        _add_lined(out, lung, hull, lab, ~ok, hu, support, near_needs_support, (p0, p1), lined_mm)
    accepted = ok & has_chord
    if parts is not None:
        parts["chord"] = keep.copy()
    if accepted.any():
        if parts is not None:
            _grow_across(parts["chord"], keep, chord, lab, accepted, allowed & ~hull, depth, dend, (p0, p1))
            out |= parts["chord"]
        else:
            _grow_across(out, keep, chord, lab, accepted, allowed & ~hull, depth, dend, (p0, p1))
    return out


def _grow_across(out, keep, chord, lab, accepted, free, depth, dend, pix) -> None:
    """Grow accepted pockets (in place into ``out``) across their chord, within its shadow (see :func:`_pockets`)."""
    p0, p1 = pix
    n = accepted.size
    cz, cr, cc = np.nonzero(chord)
    lbl = chord[cz, cr, cc] - 1
    sel = accepted[lbl]
    cr, cc, lbl = cr[sel] * p0, cc[sel] * p1, lbl[sel]
    lo_r = np.full(n, np.inf)
    hi_r = np.full(n, -np.inf)
    lo_c, hi_c = lo_r.copy(), hi_r.copy()
    np.minimum.at(lo_r, lbl, cr)
    np.maximum.at(hi_r, lbl, cr)
    np.minimum.at(lo_c, lbl, cc)
    np.maximum.at(hi_c, lbl, cc)
    sr, sc = (hi_r - lo_r)[lbl], (hi_c - lo_c)[lbl]
    proj = cr * sr + cc * sc
    order = np.lexsort((proj, lbl))
    lbl_s = lbl[order]
    first = np.flatnonzero(np.r_[True, lbl_s[1:] != lbl_s[:-1]])
    last = np.r_[first[1:], lbl_s.size] - 1
    groups = lbl_s[first]
    ar, ac = np.zeros(n), np.zeros(n)
    ur, uc = np.zeros(n), np.zeros(n)
    ar[groups], ac[groups] = cr[order[first]], cc[order[first]]
    ur[groups], uc[groups] = cr[order[last]] - ar[groups], cc[order[last]] - ac[groups]
    ll = ur * ur + uc * uc
    good = accepted & (ll > 0)
    if not good.any():
        return
    sag = np.minimum(2.0 + ll / 800.0, 12.0)
    reach = float(sag[good].max())
    steps = int(np.ceil(reach / min(p0, p1)))
    # carry each pocket's label across the free tissue beyond the hull, then test its chord's shadow (only
    # within the box of the accepted pockets grown by the reach)
    seed_all = keep & np.concatenate([[False], good])[lab]
    box = _bbox(seed_all, (0, steps + 1, steps + 1))
    cur = np.where(seed_all[box], lab[box], 0).astype(np.int32)
    seed = cur > 0
    free_b = free[box]
    for _ in range(steps + 1):
        g = _grey_grow(cur, _PLANE4)
        np.copyto(cur, g, where=(cur == 0) & free_b & (g > 0))
    gz, gr, gc = np.nonzero((cur > 0) & ~seed)
    if gz.size == 0:
        return
    i = cur[gz, gr, gc] - 1
    gz, gr, gc = gz + box[0].start, gr + box[1].start, gc + box[2].start
    qr, qc = gr * p0 - ar[i], gc * p1 - ac[i]
    t = (qr * ur[i] + qc * uc[i]) / ll[i]
    dist = np.abs(qr * uc[i] - qc * ur[i]) / np.sqrt(ll[i])
    ok = (t > 0.05) & (t < 0.95) & (dist <= sag[i]) & (depth[gz, gr, gc] >= dend[i] - 0.5 * min(p0, p1))
    grow = np.zeros(out.shape, dtype=bool)
    grow[gz[ok], gr[ok], gc[ok]] = True
    if grow.any():
        out[box] |= _dilate(keep[box], _PLANE4, iterations=steps, within=grow[box] | keep[box])


def _add_lined(
    out: np.ndarray,
    lung: np.ndarray,
    hull: np.ndarray,
    lab: np.ndarray,
    rejected: np.ndarray,
    hu: np.ndarray,
    support: np.ndarray,
    near_needs_support: bool,
    pix: tuple[float, float],
    lined_mm: float,
) -> None:
    """Add to ``out`` (in place) the parts of ``rejected`` pockets that the lung's own ground glass lines.

    ``lung`` the lung planes, ``hull`` their convex hulls, ``lab`` the pockets (1..n) and ``rejected`` (n,) the
    pockets not accepted otherwise. See :func:`_pockets` for the rules.
    """
    glass = _open(lung & (hu > -650.0) & (hu < -250.0), _PLANE4)
    if not glass.any():
        return
    n = rejected.size
    rim = _dilate(lung, _PLANE4) & ~lung
    n_border = np.maximum(np.bincount(lab[rim], minlength=n + 1)[1:], 1)
    touching = _dilate(glass, _PLANE4) & rim
    n_glass = np.bincount(lab[touching], minlength=n + 1)[1:]
    near = rejected & (n_glass >= 0.25 * n_border)
    far = rejected & (n_glass >= 0.5 * n_border)
    if far.any():
        # more than lined_mm behind the hull's outline, within the box of these pockets grown by lined_mm
        reach = [0] + [int(np.floor(lined_mm / p + 1e-6)) + 1 for p in pix]
        box = _bbox(np.concatenate([[False], far])[lab], reach)
        deep = _plane_shrink(hull[box], lined_mm, pix)
        too_deep = np.bincount(lab[box][deep], minlength=n + 1)[1:] > 0
        far &= ~too_deep
    for which, reach, needs_support in ((near, 6.0, near_needs_support), (far, lined_mm, True)):
        if not which.any():
            continue
        lined = np.concatenate([[False], which])[lab]
        if needs_support:
            lined &= support
        if lined.any():
            box = _bbox(lined)  # the result lies within lined, and so do its sources
            out[box] |= _plane_grow(touching[box] & lined[box], reach, pix) & lined[box]


def _below(lung: np.ndarray, dz: float, reach_mm: float = 40.0) -> np.ndarray:
    """Voxels with ``lung`` at most ``reach_mm`` below them in their (y, x) column (bool)."""
    n = max(1, int(round(reach_mm / dz)))
    count = np.zeros((lung.shape[0] + 1,) + lung.shape[1:], dtype=np.int32)
    np.cumsum(lung, axis=0, dtype=np.int32, out=count[1:])
    out = np.zeros(lung.shape, dtype=bool)
    out[1:] = count[1:-1] > count[np.maximum(np.arange(1, lung.shape[0]) - n, 0)]
    return out


def _depth(body: np.ndarray, cspacing: np.ndarray, axis: int) -> np.ndarray:
    """Distance (mm) to the outside of the body within each plane normal to ``axis`` (float32).

    The superior and inferior borders of the volume are not outside: the body goes on beyond them (a plane
    without any outside voxel is at least ``_FAR`` deep). The in-plane borders (y, x) are outside: a body that the
    field of view cuts (a large patient, a small reconstruction diameter) has its skin just beyond them, whereas
    measuring from the other side of the body would make the whole chest wall, the heart and the mediastinum
    of the cut side look shallow to the pocket rules of :func:`_pockets`.
    """
    padded = np.pad(body, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=False)
    # every axial plane is framed by outside voxels (its padded borders), and so is every coronal plane (its
    # padded x borders): laid side by side in one 2-D image, the planes keep the distances each has alone, and
    # one 2-D transform (cheaper than a 3-D one along an axis of no extent) gives them all
    if axis == 0:
        return _edt(padded.reshape(-1, padded.shape[2]), cspacing[1:]).reshape(padded.shape)[:, 1:-1, 1:-1]
    if axis == 1:
        pix = (cspacing[0], cspacing[2])
        return _edt(padded.reshape(padded.shape[0], -1), pix).reshape(padded.shape)[:, 1:-1, 1:-1]
    sampling = [float(s) for s in cspacing]
    sampling[axis] = _FAR
    return _edt(padded, sampling)[:, 1:-1, 1:-1]


def _depths(body: np.ndarray, cspacing) -> tuple[np.ndarray, np.ndarray]:
    """Depth below the skin (mm, float32, coarse grid) within the axial and within the coronal planes (see
    :func:`_depth`), over the body's bounding box grown by one voxel (zero elsewhere): beyond it lies only outside,
    which a full row of outside voxels on its edge already hides from the body."""
    bb = _bbox(body, (1, 1, 1))
    out = []
    for axis in (0, 1):
        d = np.zeros(body.shape, dtype=np.float32)
        d[bb] = _depth(body[bb], cspacing, axis)
        out.append(d)
    return out[0], out[1]


def _repair(
    lungs: np.ndarray, coarse: np.ndarray, body: np.ndarray, airway: np.ndarray, cspacing, depths=None
) -> np.ndarray:
    """Add to each lung its enclosed holes (axial) and its lesion pockets in axial, coronal and sagittal planes.

    Depth below the skin is the distance to the outside of the body within the axial plane, except for coronal
    planes, where it is measured within the coronal plane (distance to the lateral body wall): every point of a
    coronal plane near the back or the front is close to the skin in the axial sense. ``depths``: the two, from
    :func:`_depths` (computed here when omitted).
    """
    out = lungs.copy()
    inlung = lungs > 0
    if not inlung.any():
        return out
    # work within the lungs' bounding box (in-plane margin for the pockets), depth from the whole body
    margin = [int(np.ceil(12.0 / s)) + 2 for s in cspacing]  # pockets grow at most 12 mm beyond the hull
    box = _bbox(inlung, margin)
    axial, coronal = (d[box] for d in (depths if depths is not None else _depths(body, cspacing)))
    lungs_b, coarse_b = lungs[box], coarse[box]
    allowed = body[box] & (coarse_b < BONE_HU) & (lungs_b == 0) & ~airway[box]
    tasks = []  # (label, own box, axis, arguments of _pockets)
    for label, medial_x in ((RIGHT, 1.0), (LEFT, -1.0)):
        if not (lungs_b == label).any():
            continue
        own = _bbox(lungs_b == label, margin)  # this lung's box within the box
        lung = lungs_b[own] == label
        below = _below(lung, cspacing[0])
        arrays = {"allowed": allowed[own], "axial": axial[own], "coronal": coronal[own], "hu": coarse_b[own]}
        for axis in (0, 1, 2):  # axial planes (y, x), coronal planes (z, x), sagittal planes (z, y)
            depth = arrays["coronal"] if axis == 1 else arrays["axial"]
            pix = tuple(s for i, s in enumerate(cspacing) if i != axis)
            # chest wall thickness: median over planes of the lung's smallest depth below the skin
            dl = np.moveaxis(np.where(lung, depth, np.inf), axis, 0).min(axis=(1, 2))
            wall = float(np.median(dl[np.isfinite(dl)]))
            args = (
                *(np.moveaxis(v, axis, 0) for v in (lung, arrays["allowed"], depth)),
                pix,
                wall,
                np.moveaxis(arrays["hu"], axis, 0),
                np.moveaxis(below, axis, 0),
                axis != 0,
                (0.0, medial_x) if axis == 0 else None,
            )
            tasks.append((label, own, axis, args))
    # the six plane stacks are independent: numpy releases the GIL in its loops, so two threads share the work
    parts = [{} for _ in tasks]
    with parallel.pool(2) as pool:
        results = list(pool.map(lambda i: _pockets(*tasks[i][3], parts=parts[i]), range(len(tasks))))
    # the mediastinum and the heart lie between the lungs: what the axial planes show as a pocket on the lung's
    # medial side is not taken in by the chord rule of a coronal or sagittal plane (where the heart's anterior
    # surface or the mediastinum can look like a chest wall pocket); ground-glass evidence still adds it
    medial_of = {task[0]: part["medial"] for task, part in zip(tasks, parts) if task[2] == 0 and "medial" in part}
    add_all = np.zeros(lungs_b.shape, dtype=np.uint8)
    for (label, own, axis, _), add, part in zip(tasks, results, parts):
        add = np.moveaxis(add, 0, axis)
        if axis != 0 and label in medial_of and "chord" in part:
            add &= ~(np.moveaxis(part["chord"], 0, axis) & medial_of[label])
        add_own = add_all[own]
        add_own[add & (add_own == 0)] = label
    sub = out[box]
    put = (add_all > 0) & (sub == 0)
    sub[put] = add_all[put]
    # what the added pockets now enclose (consolidation inside its ground glass)
    for label in (RIGHT, LEFT):
        holes = fill_holes_2d(sub == label) & (sub == 0) & allowed
        sub[holes] = label
    return out


def _continue_consolidation(
    lungs: np.ndarray,
    coarse: np.ndarray,
    aerated: np.ndarray,
    body: np.ndarray,
    airway: np.ndarray,
    cspacing: np.ndarray,
    reach_mm: float = 60.0,
    min_contrast_hu: float = 40.0,
    peel_mm: float = 20.0,
    weak_layers: int = 1,
) -> tuple:
    """Grow each lung's consolidation into adjacent tissue that is measurably less dense than the tissue around
    the lungs (coarse grid; a new label array).

    Consolidation that fills the posterior costophrenic recess or lines the mediastinum or the diaphragm lies
    outside the aerated lung's outline in every plane, so the pocket rules of :func:`_repair` cannot reveal it.
    Where it is less dense than the wall, the heart and the liver around it (partly aerated consolidation), it is
    told from them by density, as a reader does: with ``C`` the median HU of the lung's own consolidation (its
    non-aerated voxels denser than ground glass) and ``W`` the median HU of the soft tissue around the lungs (two
    coarse voxels outside them, bone excluded), tissue from ``C - max(L - C, 50)`` HU (but at least -80 HU: never
    fat) up to ``L = (C + W) / 2`` that is connected to the consolidation within ``reach_mm`` is added, provided
    ``W - C`` is at least ``min_contrast_hu``. Where consolidation is as dense as the organs around it, nothing is
    added or removed. Bone and the airway are never added. Before growing, the lung's non-aerated outer voxels
    denser than ``(C + 3 W) / 4`` (wall that a pocket rule took in) are peeled off, at most ``peel_mm`` deep;
    then ``C`` is measured again, on the interior of what is left of the consolidation (its in-plane outer layer,
    partial volume with ground glass, lung or wall, left out), so that the wall no longer biases the limits.

    Noise: every decision (peeling, growth) is made on the mean HU of the soft tissue (-80 to 150 HU) in the
    3 x 3 x 3 box of coarse voxels around each voxel (see :func:`_tissue_mean`), which lowers the noise of single
    voxels about five-fold (where the coarse grid is close to the scan's own grid, its voxels carry the full
    10-40 HU soft tissue noise) while a planar edge between two tissues still crosses half-way where it did. The
    growth is a hysteresis: chains into the wall need tissue below ``(C + L) / 2``; tissue up to ``L`` joins only
    within ``weak_layers`` voxels of it (the consolidation's blurred edge), so noise in the wall starts no fingers.
    ``reach_mm`` is counted in face-connected steps of the mean coarse voxel size (along the grid's axes; a
    diagonal path reaches less far): consolidation filling the recess or the paravertebral gutter can extend
    50-60 mm beyond the part of it inside the lung's outline. Peeling needs soft tissue in half of the box around
    a voxel, growth in a third of it (the consolidation's face against aerated lung holds a third of air and the
    partial-volume layer lighter than fat).

    Returns the labels, the grown voxels (bool, or None when nothing is grown), ``L`` (the lowest of the two
    lungs') and the noise of a coarse voxel's HU (robust standard deviation, 1.4826 times the median absolute
    deviation, of the wall's soft tissue or of the consolidation's interior, whichever is lower: both also vary in
    density), with which :func:`_refine` decides the grown consolidation's edge at full resolution.
    """
    none = (lungs, None, HAZY_HU, 0.0)
    if not (lungs > 0).any():
        return none
    steps = int(np.ceil(reach_mm / float(np.mean(cspacing))))
    box = _bbox(lungs > 0, (steps + 3,) * 3)  # all the work lies within reach of the lungs
    lungs_b, hu_b, body_b = lungs[box], coarse[box], body[box]
    inside = lungs_b > 0
    # consolidation: non-aerated lung denser than ground glass, thick enough to hold an in-plane cross of coarse
    # voxels, about 10 mm wide (vessels and the partial-volume edge do not; thick slices make a 3-D cross too tall)
    dense = inside & (aerated[box] == 0) & (hu_b > HAZY_HU) & (hu_b < BONE_HU)
    seed = _open(dense, _PLANE4)
    voxel_ml = float(np.prod(cspacing)) / 1000.0
    if seed.sum() * voxel_ml < 2.0:
        return none
    one = _dilate(inside, _CROSS)
    shell = _dilate(one, _CROSS) & ~one & body_b & (hu_b > HAZY_HU) & (hu_b < BONE_HU)
    if shell.sum() < 100:
        return none
    wall = float(np.median(hu_b[shell]))
    free = body_b & ~inside & ~airway[box] & (hu_b < BONE_HU)
    smooth, count = _tissue_mean(hu_b, body_b & (hu_b >= FAT_FLOOR_HU) & (hu_b < BONE_HU))
    solid, some = count >= 14, count >= 9  # soft tissue in half, in a third of the 3 x 3 x 3 box
    cons_of = {}
    for label in (RIGHT, LEFT):
        mine = seed & (lungs_b == label)
        if mine.sum() * voxel_ml < 2.0:
            continue
        cons = float(np.median(hu_b[mine]))
        if wall - cons >= min_contrast_hu:
            cons_of[label] = cons
    if not cons_of:
        return none
    # repaired pockets reach into the wall where the outline misled the repair (e.g. along the diaphragm under
    # basal consolidation): of a lung's non-aerated voxels, those nearer in HU to the wall than to the
    # consolidation (beyond three quarters of the way) are peeled off from the outside, at most peel_mm deep
    if peel_mm > 0:
        active = np.zeros(3, dtype=bool)
        active[list(cons_of)] = True
        peel_limit = max(0.25 * c + 0.75 * wall for c in cons_of.values())
        removable = active[lungs_b] & (aerated[box] == 0) & solid & (smooth >= peel_limit)
        outside = ~inside
        for _ in range(int(np.ceil(peel_mm / float(np.mean(cspacing))))):
            gone = removable & _dilate(outside, _CROSS)
            if not gone.any():
                break
            outside |= gone
            removable &= ~gone
        lungs_b = np.where(outside, 0, lungs_b).astype(np.uint8)
        inside = lungs_b > 0
        seed &= inside
        dense &= inside
        free = body_b & ~inside & ~airway[box] & (hu_b < BONE_HU)
    cur = np.zeros(lungs_b.shape, dtype=np.uint8)
    cand = np.zeros(lungs_b.shape, dtype=bool)
    strong = np.zeros(lungs_b.shape, dtype=bool)
    limits, cores = [], []
    for label, cons in cons_of.items():
        mine = seed & (lungs_b == label)
        # the consolidation's own density, measured again now that the wall peeled off no longer weighs on it: its
        # interior (the in-plane outer layer, partial volume with ground glass, lung or wall, left out)
        core = _erode(mine, _PLANE4)
        if core.sum() * voxel_ml >= 1.0:
            cons = float(np.median(hu_b[core]))
        elif mine.sum() * voxel_ml >= 1.0:
            cons = float(np.median(hu_b[mine]))
        if wall - cons < min_contrast_hu:
            continue
        limit = 0.5 * (cons + wall)
        limits.append(limit)
        cores.append(hu_b[core] if core.sum() * voxel_ml >= 1.0 else hu_b[mine])
        lower = max(cons - max(limit - cons, 50.0), FAT_FLOOR_HU)  # never fat
        # the growth starts from the consolidation and its edge (within two voxels of its thick part)
        cur[dense & (lungs_b == label) & _dilate(mine, _CROSS, iterations=2)] = label
        ok = free & some & (smooth >= lower)
        cand |= ok & (smooth < limit)
        strong |= ok & (smooth < 0.5 * (cons + limit))
    # chains into the wall need tissue that is clearly consolidation (a quarter of the way from C to W); tissue up to
    # half-way only joins within weak_layers voxels of it (the consolidation's blurred, noisy edge)
    for through, n in ((strong, steps), (cand, weak_layers)):
        for _ in range(n if limits else 0):
            g = _grey_grow(cur, _CROSS)
            add = (cur == 0) & through & (g > 0)
            if not add.any():
                break
            cur[add] = g[add]
    out = lungs.copy()
    out[box] = lungs_b
    sub = out[box]
    put = (cur > 0) & ~inside
    sub[put] = cur[put]
    # what the grown consolidation now encloses in its axial plane
    for label in (RIGHT, LEFT):
        holes = fill_holes_2d(sub == label) & (sub == 0) & free
        sub[holes] = label
    grown = np.zeros(lungs.shape, dtype=bool)
    grown[box] = (sub > 0) & ~inside
    if not limits:
        return out, None, HAZY_HU, 0.0
    noise = min(_robust_sd(hu_b[shell & (hu_b >= FAT_FLOOR_HU)]), _robust_sd(np.concatenate(cores)))
    return out, grown, min(limits), noise


