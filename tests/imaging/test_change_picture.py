"""Tests for lungtrial.imaging._change_picture: one patient's change maps in one picture."""

from __future__ import annotations

import numpy as np

from lungtrial.imaging import change


def test_patient_picture_has_no_white_space_between_rows(pair_dir):
    """Rows as tall as their images: between the first and the last row of pictures no band of white."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out, result = pair_dir
    with np.load(out / "preview.npz") as npz:
        preview = {k: npz[k] for k in npz.files}
    rows = [{"label": f"day {d}", "status": "ok", "reason": "", "preview": preview} for d in (7, 14, 28)]
    fig = change.plot_patient_changes(rows, "S1")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    drawn = np.flatnonzero((rgb < 250).any(axis=2)[:, rgb.shape[1] // 3])  # a column through the axial pictures
    top, bottom = drawn[0], drawn[-1]
    white = ~(rgb[top:bottom] < 250).any(axis=(1, 2))
    longest = max((len(run) for run in "".join("w" if w else "." for w in white).split(".")), default=0)
    assert longest <= 0.02 * rgb.shape[0], longest
