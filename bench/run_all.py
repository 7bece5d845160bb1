"""Run every CPU benchmark and gather the figures into docs/benchmarks_cpu.md (`make bench`).

Each benchmark script takes ``--out PATH.json`` and writes its figures there; a ``"markdown"`` entry in that JSON, when
present, is the benchmark's own table, otherwise the JSON is flattened into one. The page records the command and the
machine for every figure so a reader can re-run exactly what produced it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# (name, script, extra args, what it measures); the sizes keep `make bench` under 20 min on 2 cores, the
# scripts' own defaults are the full-size runs quoted in docs/benchmarks.md
BENCHMARKS: list[tuple[str, str, list[str], str]] = [
    (
        "metrics_speed",
        "bench/metrics_speed.py",
        [],
        "DAVIS metrics: vectorised + multi-process vs a plain per-frame loop",
    ),
    (
        "model_speed",
        "bench/model_speed.py",
        ["--repeats", "3", "--warmup", "1"],
        "OVSNet.detect vs bare torchvision Mask R-CNN, Re-ID + MGA share",
    ),
    (
        "inference_speed",
        "bench/inference_speed.py",
        ["--frames", "10", "--warmup", "2"],
        "one-pass step vs bare detector, per-stage breakdown",
    ),
    (
        "long_video",
        "bench/long_video.py",
        ["--frames", "2000", "--threads", "2"],
        "resident memory over a long stream (10,000 frames: run the script alone, ~17 min)",
    ),
    (
        "train_throughput",
        "bench/train_throughput.py",
        ["--steps", "20", "--warmup", "3"],
        "demo-config training steps/s, images/s, data-loading share",
    ),
    ("lucid_speed", "bench/lucid_speed.py", [], "Lucid Data Dreaming samples/s at 480p"),
    (
        "realtime_cpu",
        "bench/realtime_cpu.py",
        ["--threads", "2"],
        "realtime preset at 240x427, 3 objects: fps, per-stage ms, J&F; PyTorch vs ONNX Runtime vs default",
    ),
    (
        "realtime_480p",
        "bench/realtime_480p.py",
        ["--videos", "2", "--frames", "20", "--threads", "2"],
        "default and realtime presets at 854x480 beside flow propagation (untrained model: speed only)",
    ),
]


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
        f"{gpu}, Python {platform.python_version()}"
    )


def render(result: dict) -> str:
    if "markdown" in result:
        return str(result["markdown"])
    rows = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, float):
            rows.append((prefix, f"{value:.4g}"))
        else:
            rows.append((prefix, str(value)))

    walk("", result)
    return "\n".join(["| figure | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke-run every benchmark at reduced size")
    parser.add_argument("--page", default=str(ROOT / "docs" / "benchmarks_cpu.md"))
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = []
    failed = []
    for name, script, extra, what in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        out = RESULTS / f"{name}.json"
        cmd = [sys.executable, script, "--out", str(out), *extra, *(["--quick"] if args.quick else [])]
        shown = " ".join(["python", script, *extra, *(["--quick"] if args.quick else [])])
        print(f"[bench] {shown}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            failed.append(name)
            sections.append(f"## {name}\n{what}\n\n`{shown}` FAILED (exit {proc.returncode}).\n")
            continue
        result = json.loads(out.read_text())
        sections.append(f"## {name}\n{what}\n\nCommand: `{shown}` ({seconds:.0f} s)\n\n{render(result)}\n")
    page = Path(args.page)
    header = (
        f"# CPU benchmark run\n\nMachine: {machine_description()}\n\n"
        f"Generated by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
    )
    tmp = page.with_suffix(".tmp")
    tmp.write_text(header + "\n".join(sections))
    tmp.replace(page)
    print(f"[bench] wrote {page}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
