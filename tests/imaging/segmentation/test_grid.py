"""The coarse-to-fine helpers (:mod:`lungtrial.imaging.segmentation._grid`) agree with a reference computed by hand. The morphology by unions of boxes (``_morphology``) is in test_morphology.py, the hulls and depths of
``repair`` in test_repair.py.
"""

from __future__ import annotations

import numpy as np


def test_block_reduce_matches_reference():
    from lungtrial.imaging.segmentation._grid import _block_reduce, _block_sum

    rng = np.random.default_rng(5)
    vol = rng.integers(-1024, 1500, size=(13, 17, 22)).astype(np.int16)
    for factors in [(1, 1, 1), (2, 3, 4), (4, 5, 5), (3, 2, 7)]:
        fz, fy, fx = factors
        ref = np.zeros([-(-n // f) for n, f in zip(vol.shape, factors)])
        for idx in np.ndindex(*ref.shape):
            ref[idx] = vol[
                idx[0] * fz : (idx[0] + 1) * fz, idx[1] * fy : (idx[1] + 1) * fy, idx[2] * fx : (idx[2] + 1) * fx
            ].mean()
        np.testing.assert_allclose(_block_reduce(vol, factors), ref, rtol=1e-5, atol=1e-3)
        mask = vol > 200
        counts = _block_sum(mask, factors)
        assert counts.dtype.kind == "u"
        np.testing.assert_array_equal(counts, _block_sum(mask.astype(np.int16), factors))
