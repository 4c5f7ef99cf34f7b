"""Speed and peak memory of one full-size scan from DICOM folder to metrics, masks and QC picture (prints figures).

The same as ``python benchmarks/bench_scan.py pipeline`` (its help lists the options: ``--workdir DIR``,
``--repeat N``, ``--slices``, ``--size``): a 512 x 512 x 300 chest CT, the whole per-scan job by stage against
SimpleITK's read, and the job's peak memory. Kept under this name because the team's issues quote it.
"""

import sys

from bench_scan import main

if __name__ == "__main__":
    main(["pipeline", *sys.argv[1:]])
