"""DAVIS metrics speed: ``ovsnet.metrics.evaluate_folder`` vs a plain single-process per-frame loop.

The reference loop (:func:`reference_evaluate_folder`) is a literal re-implementation of the official DAVIS 2017
semi-supervised evaluation: every ground-truth and result mask of a sequence read into one-hot stacks, then
for every object and every frame a full-image IoU, full-image one-pixel boundary maps and two full-image
dilations by the tolerance disk. It lives in the library (:mod:`ovsnet.metrics.reference`), which the unit tests
check against too.

The data is generated here (self-contained): a DAVIS 2017-layout folder of random-walk blob masks with void
bands, and perturbed "results" (shifted, grown/shrunk, dropped and spurious objects).

    python bench/metrics_speed.py                                  # 10 sequences x 30 frames at 480x854
    python bench/metrics_speed.py --sequences 4 --frames 12 --size 240x427 --json out.json
    python bench/metrics_speed.py --quick                          # tiny run proving the script works
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from ovsnet.metrics.davis import evaluate_folder
from ovsnet.metrics.reference import make_dataset, max_difference, reference_evaluate_folder

TOLERANCE = 1e-6


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (pool helpers), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds): CPU time does not depend on what else the machine runs."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, _cpu_seconds() - cpu


def run(
    sequences: int,
    frames: int,
    size: tuple[int, int],
    objects: int,
    workers: int | None,
    repeats: int,
    seed: int = 0,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="ovsnet-metrics-bench-") as tmp:
        root, results = Path(tmp) / "davis", Path(tmp) / "results"
        start = time.perf_counter()
        make_dataset(root, results, sequences, frames, size, objects, seed)
        setup = time.perf_counter() - start

        reference, reference_s, reference_cpu = _timed(reference_evaluate_folder, root, results)
        runs = [_timed(evaluate_folder, root, results, workers=workers) for _ in range(max(1, repeats))]
        evaluation, fast_s, fast_cpu = min(runs, key=lambda r: r[1])
        difference = max_difference(evaluation, reference)
        _, single_s, single_cpu = _timed(evaluate_folder, root, results, workers=1)
    return {
        "sequences": sequences,
        "frames": frames,
        "size": f"{size[0]}x{size[1]}",
        "objects": objects,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "setup_s": setup,
        "reference_s": reference_s,
        "reference_cpu_s": reference_cpu,
        "evaluate_folder_s": fast_s,
        "evaluate_folder_cpu_s": fast_cpu,
        "evaluate_folder_1_worker_s": single_s,
        "evaluate_folder_1_worker_cpu_s": single_cpu,
        "speedup": reference_s / fast_s,
        "speedup_1_worker": reference_s / single_s,
        "cpu_time_ratio": reference_cpu / single_cpu,
        "max_abs_difference": difference,
        "agrees_1e-6": bool(difference <= TOLERANCE),
        "global": evaluation.scores,
    }


def markdown(result: dict) -> str:
    rows = [
        (
            "data",
            f"{result['sequences']} sequences x {result['frames']} frames at {result['size']}, "
            f"{result['objects']} objects, {result['cores']} cores",
        ),
        ("plain per-frame loop (reference)", f"{result['reference_s']:.2f} s"),
        ("evaluate_folder (all cores)", f"{result['evaluate_folder_s']:.2f} s"),
        ("evaluate_folder (1 process)", f"{result['evaluate_folder_1_worker_s']:.2f} s"),
        ("speed-up, all cores", f"{result['speedup']:.1f}x"),
        ("speed-up, 1 process", f"{result['speedup_1_worker']:.1f}x"),
        ("CPU time, reference / 1 process", f"{result['cpu_time_ratio']:.1f}x"),
        ("load average during the run (1 min)", f"{result['load_average_1min']:.2f}"),
        ("max abs difference (every global figure and per-frame J/F)", f"{result['max_abs_difference']:.2e}"),
    ]
    return "\n".join(["| figure | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="480x854", help="HxW")
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=None, help="evaluate_folder processes (default: all cores)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="evaluate_folder runs; the fastest is kept")
    parser.add_argument(
        "--json", "--out", dest="json", default=None, help="write the figures to this JSON file"
    )
    parser.add_argument("--quick", action="store_true", help="tiny run (3 sequences x 8 frames at 120x214)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sequences, args.frames, args.size = 3, 8, "120x214"
    height, width = (int(v) for v in args.size.lower().split("x"))
    result = run(args.sequences, args.frames, (height, width), args.objects, args.workers, args.repeats)
    result["python"] = platform.python_version()
    result["markdown"] = markdown(result)

    from rich.console import Console
    from rich.table import Table

    table = Table(title="DAVIS metrics: evaluate_folder vs plain per-frame loop")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for line in result["markdown"].splitlines()[2:]:
        _, key, value, _ = line.split("|")
        table.add_row(key.strip(), value.strip())
    Console().print(table)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    if not result["agrees_1e-6"]:
        Console(stderr=True).print(
            f"[red]numbers differ from the reference by {result['max_abs_difference']:.3g}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
