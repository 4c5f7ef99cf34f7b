"""The change picture of one patient (matplotlib, without pyplot; the workflow's ``change_picture`` rule).
Imported from :mod:`lungtrial.imaging.change`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lungtrial.imaging.change import CHANGE_COLOURS, CHANGE_NAMES


def plot_patient_changes(rows: Sequence[Mapping], title: str = ""):
    """The change picture of one patient: one row per follow-up, its baseline and follow-up side by side in the
    same axial and coronal planes (the follow-up registered onto the baseline grid), then the change labels in
    colour over the baseline (lung window, level -600, width 1500).

    Parameters
    ----------
    rows : sequence of mapping
        Per follow-up, in time order: ``label`` (row title, e.g. ``day 7 (P01-D07)``), ``status``, ``reason`` and
        ``preview`` (the arrays of ``preview.npz`` from :func:`compare_volumes`; empty when the pair was not
        registered: the row then states the reason).
    title : figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    colours = np.zeros((len(CHANGE_NAMES), 4))
    for label, name in enumerate(CHANGE_NAMES):
        if name in ("background", "normal"):
            continue  # no colour: the CT shows through
        colours[label, :3] = np.asarray(CHANGE_COLOURS[name]) / 255.0
        colours[label, 3] = 0.75
    cmap = ListedColormap(colours)
    heads = ("baseline, axial", "follow-up, axial", "change, axial", "baseline, coronal", "follow-up, coronal",
             "change, coronal")
    n = max(len(rows), 1)
    # every row as tall as its images: the axial and coronal columns get widths in proportion to their images'
    # width / height (mm), and the figure the height those widths leave, so that no white space parts the rows
    first = next((row["preview"] for row in rows if "base_axial" in (row.get("preview") or {})), None)
    if first is None:
        ratios = [1.0] * 6
    else:
        dz, dy, dx = (float(s) for s in first["spacing"])
        (ny, nx), nz = first["base_axial"].shape, first["base_coronal"].shape[0]
        ratios = [nx * dx / (ny * dy)] * 3 + [nx * dx / (nz * dz)] * 3
    width, label_in, title_in = 15.0, 0.4, 0.9  # inches: figure, row labels, title and legend
    fig = Figure(figsize=(width, n * (width - label_in) / sum(ratios) + title_in), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.0, hspace=0.0)
    axes = fig.subplots(n, 6, squeeze=False, width_ratios=ratios)
    window = {"cmap": "gray", "vmin": -1350, "vmax": 150, "interpolation": "nearest"}
    for r, (row, axs) in enumerate(zip(rows, axes)):
        preview = row.get("preview") or {}
        for ax in axs:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if "base_axial" not in preview:
            axs[0].text(0, 0.5, f"{row.get('label', '')}: not compared ({row.get('status')}): {row.get('reason')}",
                        fontsize=9, va="center", transform=axs[0].transAxes, wrap=True)
            continue
        dz, dy, dx = (float(s) for s in preview["spacing"])
        for c, plane, aspect in ((0, "axial", dy / dx), (3, "coronal", dz / dx)):
            base = preview[f"base_{plane}"]
            follow = preview[f"follow_{plane}"]
            labels = preview[f"change_{plane}"]
            origin = "lower" if plane == "coronal" else "upper"  # coronal: superior up
            axs[c].imshow(base, aspect=aspect, origin=origin, **window)
            axs[c + 1].imshow(follow, aspect=aspect, origin=origin, **window)
            axs[c + 2].imshow(base, aspect=aspect, origin=origin, **window)
            axs[c + 2].imshow(labels, cmap=cmap, vmin=-0.5, vmax=len(CHANGE_NAMES) - 0.5, aspect=aspect,
                              origin=origin, interpolation="nearest")
        status = "" if row.get("status") == "ok" else f"  [{row.get('status')}: {row.get('reason')}]"
        axs[0].set_ylabel(row.get("label", ""), fontsize=9)
        if status:
            axs[2].set_title(status.strip(), fontsize=7, color="#D55E00", wrap=True)
    for c, head in enumerate(heads):
        axes[0][c].set_title(head, fontsize=9) if not axes[0][c].get_title() else None
    handles = [Patch(color=np.asarray(CHANGE_COLOURS[name]) / 255.0, label=name.replace("_", " "))
               for name in CHANGE_NAMES[2:]]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=9)
    fig.suptitle(title, fontsize=11)
    return fig
