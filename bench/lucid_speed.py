"""Lucid Data Dreaming throughput: can one DataLoader worker feed the training step at 480p?

A synthetic 480x854 frame with 3 textured objects. Reports samples/s for ``sample`` with the inpainted
background cached (the steady state: every Lucid sample of a frame reuses it) and uncached (the first call
per source frame, which inpaints: a dreamer with ``cache_size=0``). OpenCV runs on ``--threads`` threads
(default 1: one worker ≈ one core). Target: >= 20 cached samples/s. ``per_s`` is wall-clock throughput;
``cpu_per_s`` divides by the process CPU time instead, which stays meaningful on a loaded machine.

    python bench/lucid_speed.py                                   # 480x854, 200 samples
    python bench/lucid_speed.py --size 240x427 --samples 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from ovsnet.data.lucid import LucidConfig, LucidDreamer

TARGET_SAMPLES_PER_S = 20.0


def synthetic_frame(height: int, width: int, objects: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with ``objects`` textured ellipses of DAVIS-like sizes, and its label map."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(
        rng.integers(0, 200, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    labels = np.zeros((height, width), np.uint8)
    for k in range(objects):
        centre = (int(width * (k + 1) / (objects + 1)), int(height * rng.uniform(0.35, 0.65)))
        axes = (int(width * rng.uniform(0.06, 0.12)), int(height * rng.uniform(0.12, 0.25)))
        cv2.ellipse(labels, centre, axes, float(rng.uniform(0, 180)), 0, 360, k + 1, -1)
        texture = cv2.resize(rng.integers(50, 256, (16, 16, 3), dtype=np.uint8), (width, height))
        image[labels == k + 1] = texture[labels == k + 1]
    return image, labels


def _time(fn, count: int) -> tuple[list[float], float]:
    """Wall time per call, and the process CPU time of all calls (robust to other load on the machine)."""
    times = []
    cpu = time.process_time()
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times, time.process_time() - cpu


def _stats(measured: tuple[list[float], float]) -> dict[str, float]:
    times, cpu = measured
    arr = np.asarray(times) * 1000.0
    return {
        "per_s": round(len(arr) / (arr.sum() / 1000.0), 2),
        "ms_mean": round(float(arr.mean()), 2),
        "ms_p50": round(float(np.percentile(arr, 50)), 2),
        "ms_p95": round(float(np.percentile(arr, 95)), 2),
        "cpu_per_s": round(len(arr) / max(cpu, 1e-9), 2),
    }


def run(height: int, width: int, samples: int, objects: int, threads: int, seed: int) -> dict:
    cv2.setNumThreads(threads)
    image, labels = synthetic_frame(height, width, objects, seed)
    dreamer = LucidDreamer(LucidConfig())
    fresh = LucidDreamer(LucidConfig(cache_size=0))  # inpaints on every call, as on a new source frame

    n_uncached = max(1, min(samples, 20))
    uncached_t = _time(lambda i: fresh.sample(image, labels, np.random.default_rng([seed, 1, i])), n_uncached)
    inpaint_t = _time(lambda _: fresh.inpaint_background(image, labels), n_uncached)
    dreamer.sample(image, labels, np.random.default_rng(0))  # fill the cache
    cached_t = _time(lambda i: dreamer.sample(image, labels, np.random.default_rng([seed, 2, i])), samples)
    cached = _stats(cached_t)
    return {
        "size": [height, width],
        "objects": objects,
        "samples": samples,
        "cv2_threads": threads,
        "cv2": cv2.__version__,
        "numpy": np.__version__,
        "machine": platform.processor() or platform.machine(),
        "cached_sample": cached,
        "uncached_sample": _stats(uncached_t),
        "inpaint_only": _stats(inpaint_t),
        "target_samples_per_s": TARGET_SAMPLES_PER_S,
        "meets_target": bool(cached["per_s"] >= TARGET_SAMPLES_PER_S),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="480x854", help="HxW")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (1 = one worker, one core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", "--out", dest="json", type=Path, default=None, help="also write the results here"
    )
    parser.add_argument("--quick", action="store_true", help="240x427, 10 samples: proves the script runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.samples = "240x427", 10
    height, width = (int(v) for v in args.size.lower().split("x"))
    result = run(height, width, args.samples, args.objects, args.threads, args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
