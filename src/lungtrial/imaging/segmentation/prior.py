"""A serial prior: the same patient's lungs from another timepoint, registered onto this scan, show where the pleura
lies when consolidation as dense as the chest wall hides it.

Density cannot tell consolidation that fills the posterior recess or lines the lateral wall from the wall, the
diaphragm or the liver beside it (all 20-65 HU), and the aerated lung's outline stays smooth around it, so a single
scan does not reveal it (see :mod:`.limits`). A trial images each patient several times; at the least-affected
timepoint the lungs are aerated out to the pleura. Registered onto a scan with consolidation, that lung mask marks
the pleural space the consolidation fills.

What the prior adds to the scan's own lungs is:

- inside the prior lung and not yet lung;
- denser than aerated lung (:data:`~._grid.AIR_HU`) and lighter than bone (:data:`~._grid.BONE_HU`): consolidation,
  atelectasis and partly aerated lung (gas, ribs and vertebrae that a misregistered prior covers stay out);
- thick: the part that holds a ball of :data:`PRIOR_THICK_MM` radius. A registration error of a few mm turns the
  prior's edge into a shell over the wall, the diaphragm and the mediastinum; a shell thinner than the ball's
  diameter is an error, not a lesion;
- not within :data:`GAS_MARGIN_MM` of gas that lies mostly outside the prior (stomach, colon);
- not mostly fat (mean HU above :data:`~._grid.FAT_FLOOR_HU`): the fat of the mediastinum and of the pericardium
  that a misregistered prior covers;
- touching the scan's own lungs (consolidation is lung that lost its air; it lies against the lung it belongs to);
- and the thinner edges of such tissue (a band tapering along the wall, the tip of the recess), followed along the
  candidates for at most :data:`PRIOR_EDGE_MM` from the thick part.

The prior never removes anything the scan's own segmentation found.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._grid import AIR_HU, BONE_HU, FAT_FLOOR_HU, LEFT, RIGHT, _ball, _bbox, _dilate, _open

#: mm. Radius of the ball that what the prior adds must hold: registration errors of up to twice this (the 95th
#: percentile of a lung-masked deformable registration is 3-5 mm) leave shells over the wall thinner than it.
PRIOR_THICK_MM = 3.0
#: mm. How far the thick part continues along thinner candidate tissue: the edges of a band of consolidation that
#: tapers along the wall or into the recess's tip.
PRIOR_EDGE_MM = 10.0
#: mm. Tissue this close to gas that is not lung (the stomach's or the colon's wall and fluid, partial volume
#: included) is never added.
GAS_MARGIN_MM = 5.0


def prior_additions(hu: np.ndarray, labels: np.ndarray, prior: np.ndarray, spacing) -> np.ndarray:
    """Lung labels (1 right, 2 left, 0 none) that the prior adds to ``labels`` (see the module doc).

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in HU.
    labels : (z, y, x) uint8
        The scan's own lungs (0 background, 1 right, 2 left).
    prior : (z, y, x) array
        The same patient's lungs at another timepoint, registered onto this scan's grid: labels (1 right, 2 left)
        or a bool mask (sides are then taken from the nearest lung of ``labels``).
    spacing : (dz, dy, dx)
        Voxel size in mm.

    Returns
    -------
    (z, y, x) uint8
        0 where nothing is added, else the side the added voxel belongs to.
    """
    hu = np.asarray(hu)
    prior = np.asarray(prior)
    if prior.shape != hu.shape or labels.shape != hu.shape:
        raise ValueError(f"prior {prior.shape} and labels {labels.shape} must lie on the scan's grid {hu.shape}")
    sp = np.asarray(spacing, dtype=float)
    out = np.zeros(hu.shape, dtype=np.uint8)
    candidate = (prior > 0) & (labels == 0)
    if not candidate.any() or not (labels > 0).any():
        return out
    ball = _ball(PRIOR_THICK_MM, sp)
    reach = [s // 2 + 1 for s in ball.shape]
    box = _bbox(candidate, reach)
    h = hu[box]
    cand = candidate[box] & (h >= AIR_HU) & (h < BONE_HU)
    # never next to gas that is not lung (stomach, colon): gas regions mostly outside the prior, and the tissue
    # within GAS_MARGIN_MM of them (their wall and fluid). Air bronchograms lie inside the prior and are kept.
    lab0 = labels[box]
    air = (h < AIR_HU) & (lab0 == 0)
    if air.any():
        pieces, k = ndimage.label(air)
        inside = ndimage.mean(candidate[box] | (prior[box] > 0), pieces, index=np.arange(1, k + 1))
        foreign = np.concatenate([[False], np.asarray(inside) < 0.5])[pieces]
        if foreign.any():
            near = _dilate(foreign, _ball(GAS_MARGIN_MM, sp))
            cand &= ~near
    thick = _open(cand, ball)
    if not thick.any():
        return out
    lab = labels[box]
    comp, n = ndimage.label(thick, structure=np.ones((3, 3, 3), bool))
    touching = ndimage.binary_dilation(lab > 0, structure=ndimage.generate_binary_structure(3, 1)) & thick
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.unique(comp[touching])] = True
    keep[0] = False
    mean = ndimage.mean(h.astype(np.float32), comp, index=np.arange(n + 1))
    keep &= np.nan_to_num(mean, nan=-1000.0) > FAT_FLOOR_HU
    added = keep[comp]
    if not added.any():
        return out
    # the thin edges of what was added (a band tapering along the wall, the tip of the recess): continued along
    # the candidates for at most PRIOR_EDGE_MM (a misregistered prior's shell is added only that far from a lesion)
    step = float(sp.max())
    added = _dilate(added, _ball(step, sp), iterations=max(1, int(round(PRIOR_EDGE_MM / step))), within=cand)
    p = prior[box]
    if p.dtype == bool or not np.isin(p[added], (RIGHT, LEFT)).all():
        # sides from the nearest voxel of the scan's own lungs
        _, idx = ndimage.distance_transform_edt(lab == 0, sampling=sp, return_indices=True)
        side = lab[tuple(idx)]
    else:
        side = p
    sub = np.zeros(added.shape, dtype=np.uint8)
    sub[added] = side[added]
    out[box] = sub
    return out
