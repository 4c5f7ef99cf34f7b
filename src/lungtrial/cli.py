"""Console script ``lungtrial``: ``quantify`` one scan folder, or generate the ``demo`` trial.

Heavy modules are imported inside the subcommands so that ``lungtrial --help`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lungtrial import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lungtrial",
        description="Lung opacity on serial chest CT of a clinical trial: measure one scan, or generate the demo "
        "trial. The full workflow runs with snakemake.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    q = sub.add_parser(
        "quantify",
        help="measure one scan folder: metrics, regions, masks and QC picture",
        description="Choose and check the CT series in a DICOM folder, segment the lungs and measure opacity. "
        "Writes series.json, metrics.csv, regions.csv, masks/lungs.nii.gz, masks/opacity.nii.gz and qc.png into "
        "--out, the files and layout of the workflow's results/scans/<scan_id>/ (all at once at the end: an "
        "interrupted run leaves --out as it was). "
        "Exit status 0 when measured (each QC warning, e.g. a lung cut by the field of view, on a line of stderr), 1 "
        "when the scan cannot be measured (one line on stderr), 2 for bad usage.",
    )
    q.add_argument("dicom_folder", type=Path, help="folder with the scan's DICOM files (searched recursively)")
    q.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    q.add_argument(
        "--scan-id",
        help="scan ID used in outputs and the QC title (default: 'scan'; the folder's name is never used: folder "
        "names are often patient IDs or DICOM UIDs)",
    )
    q.add_argument(
        "--preset",
        choices=("radiology", "ards"),
        default="radiology",
        help="HU classes drawn in opacity.nii.gz and qc.png: radiology (ground glass / consolidation) or ards "
        "(poorly / non-aerated); both are always measured (default: %(default)s)",
    )
    q.add_argument(
        "--prefer",
        choices=("thinnest", "most_slices"),
        default="thinnest",
        help="which CT series to measure when the folder holds several (default: %(default)s)",
    )
    q.add_argument(
        "--prefer-kernel",
        action="append",
        default=[],
        metavar="K",
        help="preferred reconstruction kernel (e.g. B30f); repeat the option, an earlier one wins",
    )
    q.add_argument(
        "--min-slices",
        type=int,
        default=20,
        metavar="N",
        help="series with fewer slices are not measured (default: %(default)s)",
    )
    q.add_argument(
        "--max-slice-thickness",
        type=float,
        default=10.0,
        metavar="MM",
        help="series with thicker slices (mm) are not measured (default: %(default)s)",
    )
    q.add_argument(
        "--warn-slice-thickness",
        type=float,
        default=5.0,
        metavar="MM",
        help="series with thicker slices (mm) are measured with a warning: partial volume (default: %(default)s)",
    )
    q.add_argument(
        "--strict",
        action="store_true",
        help="write nothing for a scan that cannot be measured (by default its series.json, 'excluded' metrics row "
        "and QC card are written); the exit status is 1 either way",
    )
    q.add_argument(
        "--measure-implausible",
        action="store_true",
        help="measure a scan whose lungs are implausible as a chest CT's lungs (one lung or too small, no trachea "
        "or rib cage, a skull...) with the reasons as warnings on stderr and in series.json; by default it is "
        "excluded with them",
    )
    q.add_argument(
        "--lesion-mask",
        type=Path,
        metavar="PATH",
        help="lesion mask image (NIfTI, non-zero = lesion) on this scan, used instead of HU thresholds for the "
        "extent of opacity",
    )
    q.add_argument(
        "--class",
        dest="classes",
        action="append",
        type=_hu_class,
        default=[],
        metavar="NAME:LOWER:UPPER",
        help="an extra HU class, measured as NAME_ml and pct_NAME (lower < HU <= upper, in HU; leave a bound empty "
        "for none, e.g. dense:100:), as the config's imaging.classes; repeat the option for several",
    )
    q.add_argument(
        "--threads",
        type=int,
        default=2,
        metavar="N",
        help="threads the scan may use at once (default: %(default)s; 1 runs every step in turn)",
    )

    d = sub.add_parser(
        "demo",
        help="generate the demo trial (sheets, DICOM scans, truth)",
        description="Generate the synthetic demo trial: subjects.csv, scans.csv, labs.csv, DICOM folders and "
        "truth files.",
    )
    d.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    d.add_argument(
        "--size",
        choices=("tiny", "small", "full"),
        default="small",
        help="scan size: tiny (tests), small (fast) or full (512 x 512, 1 mm slices) (default: %(default)s)",
    )
    d.add_argument("--n-per-arm", type=int, default=9, metavar="N", help="subjects per arm (default: %(default)s)")
    d.add_argument("--seed", type=int, default=20200, metavar="S", help="random seed (default: %(default)s)")
    return parser


def _hu_class(text: str) -> dict:
    """``NAME:LOWER:UPPER`` (bounds in HU, either may be empty) as the config's ``{name, lower, upper}``."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected NAME:LOWER:UPPER (e.g. dense:100:), got {text!r}")
    bounds = []
    for part in parts[1:]:
        try:
            bounds.append(float(part) if part.strip() else None)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: bounds must be numbers (HU) or empty") from None
    return {"name": parts[0], "lower": bounds[0], "upper": bounds[1]}


#: The scan's name in the outputs when --scan-id is not given. Never the folder's name: PACS exports name folders by
#: the patient's ID or name, or by the study's or series' UID, which identifies the examination.
DEFAULT_SCAN_ID = "scan"


def _quantify(args: argparse.Namespace) -> int:
    from lungtrial.imaging.quantify import quantify_scan

    scan_id = args.scan_id or DEFAULT_SCAN_ID
    if not args.dicom_folder.is_dir():
        # the path is the user's own argument, not repeated: it may hold identifiers, and stderr often goes to a log
        raise FileNotFoundError("DICOM_FOLDER is not a folder; expected the scan's DICOM folder")
    result = quantify_scan(
        args.dicom_folder,
        scan_id,
        args.out,
        preset=args.preset,
        strict=args.strict,
        lesion_mask=args.lesion_mask,
        threads=args.threads,
        measure_implausible=args.measure_implausible,
        classes=args.classes,
        series_options={
            "min_slices": args.min_slices,
            "max_slice_thickness_mm": args.max_slice_thickness,
            "warn_slice_thickness_mm": args.warn_slice_thickness,
            "prefer": args.prefer,
            "prefer_kernels": args.prefer_kernel,
        },
    )
    if result.status != "ok":
        print(f"lungtrial: scan {scan_id} excluded: {result.exclusion_reason}", file=sys.stderr)
        return 1
    for warning in result.series.get("warnings", []):  # the series choice's and the measurement's
        print(f"lungtrial: scan {scan_id}: {warning}", file=sys.stderr)
    m = result.metrics
    t = result.timings
    print(
        f"{scan_id}: lung {m['lung_volume_ml']:.0f} mL, opacity {m['pct_opacity']:.1f} %, consolidation "
        f"{m['pct_consolidation']:.1f} %, severity {m['severity_score']}/24; {t['total']:.1f} s -> {args.out}"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from lungtrial.demo import generate_trial

    generate_trial(args.out, size=args.size, n_per_arm=args.n_per_arm, seed=args.seed)
    print(f"demo trial written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the console script; returns the exit status (0 ok, 1 scan or input not usable, 2 bad usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "quantify" and args.classes:
        from lungtrial.errors import InputError
        from lungtrial.imaging.metrics import hu_classes

        try:
            hu_classes(args.classes)
        except InputError as exc:  # a name used twice or a built-in column's: bad usage
            parser.error(f"--class: {exc}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.captureWarnings(True)
    from lungtrial.errors import InputError

    try:
        return _quantify(args) if args.command == "quantify" else _demo(args)
    except (InputError, OSError) as exc:
        if isinstance(exc, OSError) and exc.filename is not None:  # paths may hold identifiers: not repeated
            message = f"{exc.strerror or type(exc).__name__} (a file of DICOM_FOLDER or --out; path not shown)"
        else:
            message = " ".join(str(exc).split())
        print(f"lungtrial {args.command}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
