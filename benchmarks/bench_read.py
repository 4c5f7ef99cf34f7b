"""Speed and peak memory of DICOM ingest and volume reading against SimpleITK's series reader.

Usage::

    python benchmarks/bench_read.py [--dir DIR] [--slices 300] [--size 512] [--repeat 3]

Writes (once) an uncompressed axial CT series of ``slices`` files of ``size`` x ``size`` int16 pixels into DIR
(default: a temporary folder), then times, each in its own process so that peak RSS is per stage:

- ``sitk``: ``SimpleITK.ImageSeriesReader`` on the files in slice order (the reference),
- ``ingest``: ``lungtrial.imaging.dicom.ingest`` (header index, series choice, QC),
- ``read``: ``lungtrial.imaging.dicom.read_volume`` from ``series.json`` alone (every header parsed again by pydicom),
- ``pipeline``: what :func:`lungtrial.imaging.quantify.quantify_scan` does: ``index_folder`` once, ``ingest`` on that
  index, ``read_volume`` with it (plain files read at the recorded pixel data offsets, no second header parse);
  the DICOM part of the per-scan budget (3 x the SimpleITK read).

Prints the best wall time of ``repeat`` runs (warm page cache) and each stage's peak RSS in MiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_series(folder: Path, slices: int, size: int) -> None:
    """An axial CT series: noisy body ellipse, -2000 stored padding outside the field of view, shuffled names."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (0.40 * size)) ** 2 + ((xx - size / 2) / (0.46 * size)) ** 2 < 1
    fov = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2) ** 2
    series_uid = generate_uid()
    names = rng.permutation(slices)
    for k in range(slices):
        hu = np.where(body, 40, -1000) + rng.normal(0, 20, (size, size))
        stored = np.where(fov, np.rint(hu) + 1024, -2000).astype(np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [-175.0, -175.0, -150.0 + k * 1.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.68, 0.68]
        ds.SliceThickness = 1.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds["PixelPaddingValue"] = pydicom.DataElement(0x00280120, "SS", -2000)
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"{names[k]:05d}.dcm", enforce_file_format=True)


def run_stage(stage: str, folder: Path) -> dict:
    """Run one stage in this process; return seconds and peak RSS (MiB)."""
    from lungtrial.imaging import dicom

    series = json.loads((folder.parent / "series.json").read_text()) if stage in ("sitk", "read") else None
    start = time.perf_counter()
    if stage == "sitk":
        import SimpleITK as sitk

        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(folder / f) for f in series["files"]])
        image = reader.Execute()
        shape = image.GetSize()[::-1]
    elif stage == "ingest":
        shape = dicom.ingest(folder, "BENCH")["geometry"]["shape"]
    elif stage == "read":
        shape = dicom.read_volume(folder, series).hu.shape
    else:
        index = dicom.index_folder(folder)
        shape = dicom.read_volume(folder, dicom.ingest(folder, "BENCH", index=index), index=index).hu.shape
    seconds = time.perf_counter() - start
    return {
        "stage": stage,
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "shape": list(shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="work folder (kept); default: a temporary folder")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.dir)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or Path(tmp)
        folder = work / "series"
        if not folder.is_dir() or len(list(folder.iterdir())) != args.slices:
            start = time.perf_counter()
            write_series(folder, args.slices, args.size)
            print(f"wrote {args.slices} x {args.size} x {args.size} series in {time.perf_counter() - start:.1f} s")
        from lungtrial.imaging import dicom

        (work / "series.json").write_text(json.dumps(dicom.ingest(folder, "BENCH")))
        results = {}
        for stage in ("sitk", "ingest", "read", "pipeline"):
            runs = []
            for _ in range(args.repeat):
                cmd = [sys.executable, __file__, "--stage", stage, "--dir", str(folder)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            best = min(runs, key=lambda r: r["seconds"])
            results[stage] = best
            print(
                f"{stage:9s} {best['seconds']:7.3f} s   peak RSS {best['peak_rss_mib']:7.1f} MiB   shape {best['shape']}"
            )
        ratio = results["pipeline"]["seconds"] / results["sitk"]["seconds"]
        print(f"read_volume / SimpleITK: {results['read']['seconds'] / results['sitk']['seconds']:.2f}")
        print(f"ingest + read_volume / SimpleITK: {ratio:.2f} (budget for the whole per-scan pipeline: 3)")


if __name__ == "__main__":
    main()
