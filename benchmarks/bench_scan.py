"""Speed and peak memory of one scan's job, by stage, against SimpleITK's read of the same series (prints figures).

Three tools on generated chest CT (the demo phantom, :func:`_harness.ct_series`; kept in ``--workdir`` and reused):

``pipeline``
    The whole per-scan job, :func:`lungtrial.imaging.quantify.quantify_scan` (ingest + read, segment, measure,
    write), in a child process per run, against ``SimpleITK.ImageSeriesReader`` reading the same files (page cache
    warm). Prints each stage's seconds (fastest run), total / SimpleITK read (targets: <= 3), the median run's
    ratio, the ratio without the segmentation stage, and the child's peak memory (target <= 1.5 GB). ``--without
    rawheader directread morphology memory`` switches those hand-written speed paths off (their ``ENABLED`` flags:
    pydicom, scipy.ndimage and ``np.zeros`` do the work instead), so that two runs show what each buys. Transparent
    huge pages: numpy asks for them on large arrays unless ``NUMPY_MADVISE_HUGEPAGE=0`` is set before it is
    imported; the pipeline allocates its volumes in ordinary pages (:func:`lungtrial.memory.new_volume`). The
    setting in force is printed and the child inherits the environment, so ``NUMPY_MADVISE_HUGEPAGE=0 python
    benchmarks/bench_scan.py pipeline`` measures the other case.
``read``
    The DICOM part alone, each step in its own child process (peak memory per step): ``sitk``
    (``ImageSeriesReader`` on the chosen files, the reference), ``ingest`` (header index, series choice, QC),
    ``read`` (:func:`~lungtrial.imaging.dicom.read_volume` from ``series.json`` alone, every header parsed again)
    and ``pipeline`` (what the per-scan job does: ``index_folder`` once, ``ingest`` and ``read_volume`` on that
    index). Prints the best of ``--repeat`` runs and read / SimpleITK ratios.
``segment``
    The segmentation functions alone (``segment_lungs``, ``segment_vessels``, ``opacity_exclusion``) on a phantom
    volume with its truth (``--size full``: 512 x 512 x 300, 0.7 mm pixels; ``small``: 256 x 256 x 120), loaded
    into RAM in a fresh child process; the first run is printed as ``cold``, the best of ``--repeat`` more as
    ``warm``; peak memory after the first run; Dice of each lung and the lung volume error against the truth.

Run: ``python benchmarks/bench_scan.py pipeline [--workdir DIR] [--repeat N] [--slices 300] [--size 512]
[--noise HU]``,
``... read [--workdir DIR] [--repeat N]``, ``... segment [--size full|small] [--thickness MM] [--lesions GG CONS]``.
``benchmarks/bench_speed.py`` is ``bench_scan.py pipeline``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import _harness as h

TARGET_RATIO = 3.0
TARGET_PEAK_GB = 1.5
SEGMENT_SIZES = {"full": ((300, 512, 512), (1.0, 0.7, 0.7)), "small": ((120, 256, 256), (2.5, 1.4, 1.4))}
READ_STEPS = ("sitk", "ingest", "read", "pipeline")


# ------------------------------------------------------------------------------------------------------ pipeline


#: The hand-written speed paths that ``pipeline --without`` can switch off: name -> module with an ``ENABLED`` flag
#: (off, the library call does the same work: pydicom, scipy.ndimage, np.zeros).
SPEED_PATHS = {
    "rawheader": "lungtrial.imaging.dicom._rawheader",
    "directread": "lungtrial.imaging.dicom._directread",
    "morphology": "lungtrial.imaging.segmentation._morphology",
    "memory": "lungtrial.memory",
}


def pipeline_child(folder: str, outdir: str, without: str = "") -> None:
    """In the child: the whole per-scan job on ``folder`` with the speed paths named in ``without`` (comma-separated
    keys of :data:`SPEED_PATHS`) switched off; prints status, stage seconds and peak memory as JSON."""
    import importlib

    for name in filter(None, without.split(",")):
        importlib.import_module(SPEED_PATHS[name]).ENABLED = False
    with h.clock() as c:
        result = h.quantify(folder, "BENCH", outdir, title="speed benchmark")
    result["timings"]["process"] = c.wall
    print(json.dumps(result | {"peak_gb": h.peak_rss_mb() / 1024}))


def pipeline(args: argparse.Namespace, work: Path) -> None:
    folder = h.ct_series(work, args.slices, args.size, args.noise)
    size_mb = h.folder_mb(folder)
    h.warm_page_cache(folder)
    reference, runs = float("inf"), []
    for _ in range(max(1, args.repeat)):
        seconds, shape = h.sitk_read(folder)
        assert shape == (args.slices, args.size, args.size), shape
        reference = min(reference, seconds)
        cmd = h.python_cmd(__file__, "child-pipeline", folder, work / "out", ",".join(args.without))
        result, child = h.run_json_child(cmd)
        runs.append(result | {"wall": child.wall})
    best = min(runs, key=lambda r: r["timings"]["total"])
    t, wall, peak_gb = best["timings"], best["wall"], max(r["peak_gb"] for r in runs)

    print(f"series: {args.slices} x {args.size} x {args.size}, {size_mb:.0f} MB uncompressed; status {best['status']}")
    if args.without:
        print(f"speed paths switched off (the library call instead): {', '.join(args.without)}")
    print(f"transparent huge pages: {h.thp_mode()}; "
          f"NUMPY_MADVISE_HUGEPAGE={os.environ.get('NUMPY_MADVISE_HUGEPAGE', 'unset')}")  # fmt: skip
    if len(runs) > 1:
        totals = ", ".join(f"{r['timings']['total']:.2f}" for r in runs)
        print(f"best of {len(runs)} runs (pipeline totals: {totals} s; peak memory: the largest)")
    print(f"SimpleITK ImageSeriesReader read: {reference:6.2f} s")
    for stage in ("read", "segment", "measure", "write", "total"):
        print(f"pipeline {stage:<8}: {t.get(stage, float('nan')):6.2f} s")
    print(f"child process wall time (with imports): {wall:6.2f} s "
          f"(process start and imports: {wall - t['total']:.2f} s)")  # fmt: skip
    ratio = t["total"] / reference
    print(f"total / SimpleITK read = {ratio:.2f} (target <= {TARGET_RATIO}: {h.verdict(ratio <= TARGET_RATIO)})")
    if len(runs) > 1:
        median = statistics.median(r["timings"]["total"] for r in runs) / reference
        print(f"median run: total / SimpleITK read = {median:.2f}")
    rest = t["total"] - t.get("segment", 0.0)
    print(f"total without segment (read + measure + write + orchestration) / SimpleITK read = {rest / reference:.2f}")
    print(f"peak memory (child max RSS) = {peak_gb:.2f} GB "
          f"(target <= {TARGET_PEAK_GB}: {h.verdict(peak_gb <= TARGET_PEAK_GB)})")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- read


def read_child(step: str, folder: str, series_json: str) -> None:
    """In the child: one DICOM step on ``folder``; prints seconds and the volume's shape as JSON."""
    from lungtrial.imaging import dicom

    series = json.loads(Path(series_json).read_text())
    with h.clock() as c:
        if step == "sitk":
            shape = h.sitk_read(Path(folder), series["files_on_disk"])[1]
        elif step == "ingest":
            shape = dicom.ingest(folder, "BENCH")["geometry"]["shape"]
        elif step == "read":
            shape = dicom.read_volume(folder, series).hu.shape
        else:
            index = dicom.index_folder(folder)
            shape = dicom.read_volume(folder, dicom.ingest(folder, "BENCH", index=index), index=index).hu.shape
    print(json.dumps({"seconds": c.wall, "shape": list(shape)}))


def read(args: argparse.Namespace, work: Path) -> None:
    from lungtrial.imaging import dicom

    folder = h.ct_series(work, args.slices, args.size)
    series = dicom.ingest(folder, "BENCH")
    # the reference reads the same files in the same order; series.json names them by number only ("file N": the
    # N-th file of the folder sorted by relative path)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    series["files_on_disk"] = [names[int(f.split()[1]) - 1] for f in series["files"]]
    series_json = work / "series.json"
    series_json.write_text(json.dumps(series))
    h.warm_page_cache(folder)
    table = h.Table(
        f"DICOM reading, {args.slices} x {args.size} x {args.size} (best of {args.repeat}, page cache warm)",
        [("step", 9, ""), ("seconds", 7, ".3f"), ("peak_MiB", 8, ".1f"), ("shape", 16, "")],
    )
    best = {}
    for step in READ_STEPS:
        runs = [
            h.run_json_child(h.python_cmd(__file__, "child-read", step, folder, series_json))
            for _ in range(max(1, args.repeat))
        ]
        result, child = min(runs, key=lambda r: r[0]["seconds"])
        best[step] = result["seconds"]
        table.add(step, result["seconds"], child.peak_mb, str(result["shape"]))
    table.print()
    print(f"read_volume / SimpleITK: {best['read'] / best['sitk']:.2f}")
    print(f"ingest + read_volume / SimpleITK: {best['pipeline'] / best['sitk']:.2f} "
          f"(budget for the whole per-scan pipeline: {TARGET_RATIO:g})")  # fmt: skip


# ------------------------------------------------------------------------------------------------------- segment


def segment_render(size: str, thickness: float | None, lesions: list[float], out: Path) -> None:
    """In a child: render the phantom and its truth to ``.npy`` files in ``out``."""
    import numpy as np

    from lungtrial.demo.phantom import Lesions, PhantomParams, make_chest

    shape, spacing = SEGMENT_SIZES[size]
    if thickness:
        shape = (int(round(shape[0] * spacing[0] / thickness)), shape[1], shape[2])
        spacing = (thickness, spacing[1], spacing[2])
    burden = Lesions(lesions[0], lesions[1], seed=3) if sum(lesions) > 0 else None
    hu, truth = make_chest(PhantomParams(), spacing, shape, burden, seed=1)
    np.save(out / "hu.npy", np.round(hu).astype(np.int16))
    np.save(out / "lungs.npy", truth.lungs)
    np.save(out / "lesions.npy", truth.lesions)
    (out / "spacing.json").write_text(json.dumps(list(spacing)))


def segment_measure(out: Path, repeat: int) -> None:
    """In a child: time the three segmentation functions on the rendered volume and compare with its truth."""
    import numpy as np
    import SimpleITK  # noqa: F401 - imported by the job anyway (NIfTI masks); not part of the timing

    from lungtrial.imaging.segmentation import opacity_exclusion, segment_lungs, segment_vessels

    spacing = tuple(json.loads((out / "spacing.json").read_text()))
    t_load, hu = h.timed(np.load, out / "hu.npy")
    rss0 = h.peak_rss_mb()

    def once() -> tuple:
        t_lungs, lungs = h.timed(segment_lungs, hu, spacing)
        t_vessels, vessels = h.timed(segment_vessels, hu, lungs, spacing)
        t_excl, excluded = h.timed(opacity_exclusion, hu, lungs, spacing, vessels=vessels)
        return (t_lungs, t_vessels, t_excl, t_lungs + t_vessels + t_excl), lungs, excluded

    cold, lungs, excluded = once()
    peak = h.peak_rss_mb()
    warm = [once()[0] for _ in range(repeat)]
    best = [min(t[i] for t in warm) for i in range(4)] if warm else None

    truth = np.load(out / "lungs.npy")
    lesions = np.load(out / "lesions.npy") > 0
    inl = lungs > 0
    dice = {
        side: 2.0 * ((lungs == k) & (truth == k)).sum() / ((lungs == k).sum() + (truth == k).sum())
        for k, side in ((1, "right"), (2, "left"))
    }
    vol_err = 100.0 * (inl.sum() / (truth > 0).sum() - 1.0)
    opacity = inl & (hu >= -700) & (hu <= 100) & ~excluded
    print(f"shape {hu.shape} spacing {spacing} mm; load .npy {t_load:.2f} s")
    for name, t in (("cold", cold), (f"warm (best of {repeat})", best)):
        if t is not None:
            print(f"{name:>18}: segment_lungs {t[0]:.3f} s; segment_vessels {t[1]:.3f} s; "
                  f"opacity_exclusion {t[2]:.3f} s; all three {t[3]:.3f} s")  # fmt: skip
    print(f"peak RSS after the first run {peak:.0f} MB (after loading the volume: {rss0:.0f} MB)")
    print(f"Dice right {dice['right']:.4f} left {dice['left']:.4f}; lung volume error {vol_err:+.2f} %")
    print(f"opacity {100.0 * opacity.sum() / inl.sum():.2f} % of the lung vs truth "
          f"{100.0 * lesions.sum() / (truth > 0).sum():.2f} %")  # fmt: skip


def segment(args: argparse.Namespace, work: Path) -> None:
    shape = [args.size, str(args.thickness or 0), *(str(v) for v in args.lesions)]
    if not (work / "hu.npy").exists():
        h.run_child(h.python_cmd(__file__, "child-segment-render", work, *shape), log=work / "render.log")
    measured = h.run_child(h.python_cmd(__file__, "child-segment-measure", work, args.repeat))
    print(measured.stdout, end="")


# ---------------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("child-"):  # the benchmark's own child processes
        step, rest = argv[0], argv[1:]
        if step == "child-pipeline":
            pipeline_child(*rest)
        elif step == "child-read":
            read_child(*rest)
        elif step == "child-segment-render":
            out, size, thickness, *lesions = rest
            segment_render(size, float(thickness) or None, [float(v) for v in lesions], Path(out))
        elif step == "child-segment-measure":
            segment_measure(Path(rest[0]), int(rest[1]))
        return

    parser, add_tool = h.tool_parser(__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workdir", type=Path, help="keep the generated scan here and reuse it (default: temporary)")
    for name, default, text in (
        ("pipeline", 5, "the whole per-scan job by stage vs SimpleITK's read; peak memory"),
        ("read", 3, "DICOM ingest and volume reading, each step in its own process, vs SimpleITK"),
    ):
        tool = add_tool(name, text, parents=[common])
        tool.add_argument("--repeat", type=int, default=default, help=f"runs (fastest printed; default {default})")
        tool.add_argument("--slices", type=int, default=300, help="slices of the generated series (default 300)")
        tool.add_argument("--size", type=int, default=512, help="rows and columns per slice (default 512)")
        if name == "pipeline":
            tool.add_argument(
                "--noise",
                type=float,
                default=0.0,
                metavar="HU",
                help="add white noise of this standard deviation (HU) to the generated series, as a sharp kernel or "
                "a low dose does (e.g. 60: measured on smoothed HU; default 0)",
            )
            tool.add_argument(
                "--without",
                nargs="+",
                default=[],
                choices=sorted(SPEED_PATHS),
                help="switch these hand-written speed paths off (pydicom, scipy.ndimage or np.zeros instead): run "
                "once with and once without to see what each buys",
            )
    text = "segment_lungs, segment_vessels and opacity_exclusion alone on a phantom volume; Dice vs truth"
    tool = add_tool("segment", text, parents=[common])
    tool.add_argument("--size", choices=sorted(SEGMENT_SIZES), default="full")
    tool.add_argument("--thickness", type=float, default=None, help="slice thickness and spacing in mm")
    tool.add_argument(
        "--lesions",
        type=float,
        nargs=2,
        default=(10.0, 3.0),
        metavar=("GG", "CONS"),
        help="ground glass and consolidation, %% of the lung volume (default 10 3; 0 0 for healthy lungs)",
    )
    tool.add_argument("--repeat", type=int, default=3, help="warm runs after the cold one (best printed; default 3)")
    args = parser.parse_args(argv)
    run = {"pipeline": pipeline, "read": read, "segment": segment}[args.tool]
    with tempfile.TemporaryDirectory(prefix="bench_scan.") as tmp:
        work = args.workdir or Path(tmp)
        if args.tool == "segment":  # the rendered phantom depends on the options: one folder per choice
            work = work / "segment_{}_{}_{}_{}".format(args.size, args.thickness or "default", *args.lesions)
        work.mkdir(parents=True, exist_ok=True)
        run(args, work)


if __name__ == "__main__":
    main()
