"""Evaluate many sequences: one process per core (this one included), then the tables.

:func:`evaluate_sequences` spreads already-loaded sequences over a process pool; :func:`evaluate_folder`
loads a DAVIS-layout split first. OpenCV runs single-threaded in each process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2

from ovsnet.data.davis import load_davis
from ovsnet.data.io import DataError
from ovsnet.data.loading import select_sequences
from ovsnet.data.sequence import VideoSequence
from ovsnet.metrics.measures import BOUND_TH
from ovsnet.metrics.sequences import SequenceEvaluation, evaluate_sequence
from ovsnet.metrics.tables import DavisEvaluation

__all__ = ["evaluate_folder", "evaluate_sequences"]

log = logging.getLogger(__name__)

_MIN_FRAMES_PER_WORKER = 40


def _default_workers(sequences: Sequence[VideoSequence]) -> int:
    """One process per available core, no more than the sequences, and fewer for small jobs: a helper can take
    a fraction of a second to start (forkserver), the time of about ``_MIN_FRAMES_PER_WORKER`` frames."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    frames = sum(max(len(seq.annotated_indices) - 2, 0) for seq in sequences)
    return max(1, min(cores, len(sequences), frames // _MIN_FRAMES_PER_WORKER))


@contextlib.contextmanager
def _single_threaded_opencv() -> Iterator[None]:
    """OpenCV's own threads only add synchronisation to these small per-frame operations (and stall when a
    core is busy elsewhere); parallelism comes from evaluating sequences in separate processes."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _evaluate_task(args: tuple[VideoSequence, str, float]) -> SequenceEvaluation:
    sequence, results_dir, bound_th = args
    return evaluate_sequence(sequence, results_dir, bound_th)


def _pool_context() -> multiprocessing.context.BaseContext:
    """How helper processes start.

    ``fork`` (instant) on Linux when this process runs a single Python thread: the helpers only use numpy,
    Pillow and OpenCV, and OpenCV's thread pool is switched off before forking (see
    :func:`_single_threaded_opencv`), so nothing they touch can be left locked. Otherwise (a training run with
    logger threads, other platforms) ``forkserver`` with this module preloaded, or ``spawn``: safe, but a
    fraction of a second to start.
    """
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _main_is_importable() -> bool:
    """Worker processes (forkserver/spawn) re-import the parent's ``__main__`` file; ``python - < x`` has none."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.isfile(path)


def _evaluate_in_pool(
    sequences: list[VideoSequence],
    results_dir: str,
    bound_th: float,
    n_workers: int,
    context: multiprocessing.context.BaseContext,
) -> list[SequenceEvaluation]:
    """``n_workers - 1`` helper processes take sequences from the front while this process, instead of waiting
    for them to start, takes not-yet-started ones from the back."""
    done: list[SequenceEvaluation | None] = [None] * len(sequences)
    try:
        with ProcessPoolExecutor(n_workers - 1, mp_context=context, initializer=_init_worker) as pool:
            with warnings.catch_warnings():  # Python >= 3.12 warns on fork with (idle) native threads around
                warnings.filterwarnings(
                    "ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning
                )
                futures = [pool.submit(_evaluate_task, (seq, results_dir, bound_th)) for seq in sequences]
            try:
                for i in reversed(range(len(sequences))):
                    if futures[i].cancel():  # no helper has it yet
                        done[i] = evaluate_sequence(sequences[i], results_dir, bound_th)
                for i, future in enumerate(futures):
                    if done[i] is None:
                        done[i] = future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except BrokenProcessPool as exc:
        # a helper died (killed, out of memory): same numbers, computed here
        log.warning("process pool failed (%s); evaluating the remaining sequences in this process", exc)
        done = [
            d if d is not None else evaluate_sequence(seq, results_dir, bound_th)
            for d, seq in zip(done, sequences, strict=True)
        ]
    return [d for d in done if d is not None]


def evaluate_sequences(
    sequences: Sequence[VideoSequence],
    results_dir: str | os.PathLike,
    split: str = "val",
    workers: int | None = None,
    bound_th: float = BOUND_TH,
) -> DavisEvaluation:
    """Evaluate already-loaded sequences against ``<results_dir>/<sequence>/<frame>.png``.

    ``workers``: processes, this one included (default: one per available core, at most one per sequence, a
    single one for small jobs; 0 or 1 runs in this process only). The tables keep the order given.
    """
    start = time.perf_counter()
    results_dir = str(results_dir)
    if not Path(results_dir).is_dir():
        raise DataError(f"results folder {results_dir} does not exist")
    sequences = list(sequences)
    n_workers = _default_workers(sequences) if workers is None else max(1, min(int(workers), len(sequences)))
    context = _pool_context()
    if n_workers > 1 and context.get_start_method() != "fork" and not _main_is_importable():
        log.info("the __main__ script cannot be re-imported by worker processes; evaluating in this process")
        n_workers = 1
    with _single_threaded_opencv():
        if n_workers <= 1:
            evaluated = [evaluate_sequence(seq, results_dir, bound_th) for seq in sequences]
        else:
            evaluated = _evaluate_in_pool(sequences, results_dir, bound_th, n_workers, context)
    evaluation = DavisEvaluation(sequences=evaluated, split=split)
    log.info(
        "evaluated %d sequences (%d objects) in %.2f s with %d worker(s): J&F-Mean %.4f",
        len(evaluated),
        len(evaluation.per_object),
        time.perf_counter() - start,
        n_workers,
        evaluation.scores["J&F-Mean"],
    )
    return evaluation


def evaluate_folder(
    davis_root: str | os.PathLike,
    results_dir: str | os.PathLike,
    split: str = "val",
    year: int = 2017,
    resolution: str = "480p",
    sequences: Sequence[str] | None = None,
    workers: int | None = None,
) -> DavisEvaluation:
    """Evaluate a results folder against a DAVIS-layout dataset split (the official semi-supervised protocol).

    ``sequences`` restricts the evaluation to the named sequences of the split (in the given order).
    """
    loaded = load_davis(davis_root, year=year, split=split, resolution=resolution)
    if sequences is not None:
        try:
            loaded = select_sequences(loaded, sequences)
        except DataError as exc:
            raise DataError(f"DAVIS {year} split {split!r} of {davis_root}: {exc}") from None
    return evaluate_sequences(loaded, results_dir, split=split, workers=workers)
