"""The two lungs among the air regions inside the body: ground-glass cores, the choice anchored on the airway,
the split of lungs joined at a junction."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._grid import _CROSS, LEFT, RIGHT, _erode, _grey_grow, _open

#: mm. Radius of the ellipsoid a ground-glass core holds: the partial-volume band between aerated lung and the
#: chest wall, the mediastinum or the diaphragm (one or two voxels of a 1-5 mm grid) is thinner.
HAZY_CORE_MM = 2.5
#: mm. Joined lungs are eroded for at most this far to part them: the anterior and posterior junction lines where
#: the two lungs touch are a few mm thick; a lung is 100 mm or more across.
JUNCTION_MAX_MM = 30.0
#: The smaller part of an eroded pair must hold this share of the larger one to be a lung (else a lobe's tip).
SPLIT_MIN_SHARE = 0.1
#: A region holding both lungs has this share of its voxels on either side of the midline at least.
BOTH_SIDES_SHARE = 0.2


def _hazy_structure(cspacing: np.ndarray) -> np.ndarray:
    """Ellipsoid of radius :data:`HAZY_CORE_MM`, at least one voxel along each axis (coarse grid)."""
    r = [max(1, int(round(HAZY_CORE_MM / s))) for s in cspacing]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g / k) ** 2 for g, k in zip(grids, r)) <= 1.0 + 1e-9


def _hazy_core(hazy: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Ground-glass cores: the hazy voxels (-500 to -250 HU) that hold an ellipsoid of radius :data:`HAZY_CORE_MM`
    (>= 1 voxel).

    The partial-volume band between aerated lung and the chest wall, the mediastinum or the diaphragm (also where
    a thick slice cuts the diaphragm dome) is thinner than that and is not a core.
    """
    return _open(hazy, _hazy_structure(cspacing))


def _hazy_edges(lungs: np.ndarray, hazy: np.ndarray, core: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """``lungs`` with the hazy voxels within one structuring element of their ground-glass cores (labels kept)."""
    out = lungs.copy()
    mine = core & (lungs > 0)
    if not mine.any():
        return out
    grown = _grey_grow(np.where(mine, lungs, 0).astype(np.uint8), _hazy_structure(cspacing))
    add = hazy & (out == 0) & (grown > 0)
    out[add] = grown[add]
    return out


def _split_joined(comp: np.ndarray, cspacing: np.ndarray, midline_x: float) -> np.ndarray | None:
    """Split one region holding both lungs; returns labels 1 (right) / 2 (left) or None if it is one lung."""
    eroded = comp
    for _ in range(int(np.ceil(JUNCTION_MAX_MM / cspacing[1:].min()))):
        eroded = _erode(eroded, _CROSS)
        if not eroded.any():
            return None
        lab, n = ndimage.label(eroded)
        if n < 2:
            continue
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        order = np.argsort(sizes)[::-1][:2]
        if sizes[order[1]] < SPLIT_MIN_SHARE * sizes[order[0]]:
            continue
        cxs = [np.nonzero(lab == k)[2].mean() for k in order]
        if (cxs[0] - midline_x) * (cxs[1] - midline_x) >= 0:
            continue  # two parts on the same side: one lung with a narrow waist
        seeds = np.zeros(comp.shape, dtype=np.uint8)
        right, left = (order[0], order[1]) if cxs[0] < cxs[1] else (order[1], order[0])
        seeds[lab == right] = RIGHT
        seeds[lab == left] = LEFT
        idx = ndimage.distance_transform_edt(seeds == 0, sampling=cspacing, return_distances=False, return_indices=True)
        out = seeds[tuple(idx)]
        out[~comp] = 0
        return out
    return None


#: ml. Smallest air region that can be (part of) a lung on the coarse grid; bowel gas bubbles, the oesophagus and
#: air trapped in skin folds are smaller, a lung reduced by disease to its aerated remainder is larger.
MIN_LUNG_ML = 20.0


def _midline_x(body: np.ndarray) -> float:
    xs_body = body.sum(axis=(0, 1)).astype(float)
    return float((xs_body * np.arange(body.shape[2])).sum() / xs_body.sum())


def pick_lungs(cand: np.ndarray, body: np.ndarray, airway: np.ndarray, cspacing) -> tuple[np.ndarray, bool]:
    """Right (1) and left (2) lung among the candidate air regions (coarse grid, uint8), and whether they were
    anchored on the airway.

    The lungs hang from the airway tree: the candidates are the air regions of at least :data:`MIN_LUNG_ML` that
    touch the trachea or the main bronchi (``airway``), never chosen by size alone, so that the air between the
    back and a tray, bowel or stomach gas and a second body in view are never lungs. Each region is given the side
    of the body's midline its centre lies on; a region that holds both lungs (joined at the anterior or posterior
    junction) is split. A lung cut off from the airway (consolidation around its hilum) is the largest region on
    its side reaching above the other lung's centre. Without an airway in view (a reconstruction that cuts the
    trachea off, or none found), the largest region and the largest one on the other side of the midline reaching
    above its centre are taken, and ``anchored`` is False.
    """
    cspacing = np.asarray(cspacing, float)
    voxel_ml = float(np.prod(cspacing)) / 1000.0
    lab, n = ndimage.label(cand)
    if n == 0:
        raise ValueError("no lung found: no air region inside the body")
    sizes = np.bincount(lab.ravel()).astype(float)
    sizes[0] = 0
    big = sizes * voxel_ml >= MIN_LUNG_ML
    if not big.any():
        raise ValueError(f"no lung found: the largest air region inside the body is smaller than {MIN_LUNG_ML:g} ml")
    midline_x = _midline_x(body)
    objs = ndimage.find_objects(lab)
    touched = np.zeros(n + 1, dtype=bool)
    if airway.any():
        touched[np.unique(lab[ndimage.binary_dilation(airway, structure=np.ones((3, 3, 3), bool))])] = True
        touched[0] = False
    chosen = [int(k) for k in np.flatnonzero(touched & big)]
    out = np.zeros(cand.shape, dtype=np.uint8)
    if chosen:
        for k in sorted(chosen, key=lambda k: -sizes[k]):
            sl = objs[k - 1]
            comp = lab[sl] == k
            xs = np.nonzero(comp)[2] + sl[2].start
            both = min(np.count_nonzero(xs < midline_x), np.count_nonzero(xs >= midline_x)) > BOTH_SIDES_SHARE * xs.size
            split = _split_joined(comp, cspacing, midline_x - sl[2].start) if both else None
            if split is not None:
                view = out[sl]
                view[split > 0] = split[split > 0]
            else:
                out[sl][comp] = RIGHT if xs.mean() < midline_x else LEFT
        for side in (RIGHT, LEFT):
            if not (out == side).any():
                _other_side(out, lab, sizes, big & ~touched, objs, midline_x, side)
        return out, True
    return _largest_pair(lab, sizes, big, objs, cspacing, midline_x), False


def _other_side(out, lab, sizes, big, objs, midline_x: float, side: int) -> None:
    """Label as ``side`` the largest region on that side of the midline that reaches above the centre of the lung
    already found (a lung cut off from its main bronchus by consolidation around the hilum; bowel and stomach gas
    lie below the diaphragm)."""
    found = np.nonzero(out)
    if found[0].size == 0:
        return
    zc = found[0].mean()
    for k in (int(k) for k in np.argsort(sizes)[::-1] if big[k]):
        o = objs[k - 1]
        kx = np.nonzero(lab[o] == k)[2]
        if ((kx.mean() + o[2].start < midline_x) == (side == RIGHT)) and o[0].stop - 1 >= zc:
            out[lab == k] = side
            return


def _largest_pair(lab, sizes, big, objs, cspacing, midline_x) -> np.ndarray:
    """The largest region (split if it holds both lungs) and the largest other one on the other side of the
    midline reaching above its centre (bowel gas lies below the diaphragm)."""
    order = [int(k) for k in np.argsort(sizes)[::-1] if big[k]]
    first = order[0]
    sl = objs[first - 1]
    split = _split_joined(lab[sl] == first, cspacing, midline_x - sl[2].start)
    out = np.zeros(lab.shape, dtype=np.uint8)
    if split is not None:
        out[sl][split > 0] = split[split > 0]
        return out
    zs, _, xs = np.nonzero(lab[sl] == first)
    side = RIGHT if xs.mean() + sl[2].start < midline_x else LEFT
    out[lab == first] = side
    zc = zs.mean() + sl[0].start
    for k in order[1:]:
        o = objs[k - 1]
        kx = np.nonzero(lab[o] == k)[2]
        other = (kx.mean() + o[2].start < midline_x) != (side == RIGHT)
        if other and o[0].stop - 1 >= zc:
            out[lab == k] = LEFT if side == RIGHT else RIGHT
            break
    return out
