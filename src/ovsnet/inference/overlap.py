"""Reading frames and writing results beside the segmenter, each on a thread of its own.

Decoding a frame (1 ms from an mp4, 3-4 ms from a DAVIS JPEG at 854x480) and writing its PNG (1.2 ms) are
C code that releases the GIL, while much of a segmentation step is Python between small tensor operations
that leave a core idle. Run in line they add to every frame's time; beside it they mostly fill those gaps.
Neither changes a result: frames arrive in order, errors surface at the frame they belong to, and every write
is finished (or its error raised) before the caller goes on.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["BackgroundWriter", "prefetched"]

T = TypeVar("T")

_END = object()


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """``items`` read ``depth`` ahead on a reader thread; the same items in the same order.

    An exception raised while reading (a corrupt frame) is raised here, after the items before it. Closing
    the returned generator early (an error in the caller's loop) stops the reader at its next item.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised where the item would have been
            put((_END, exc))
            return
        put((_END, None))

    reader = threading.Thread(target=read, name="ovsnet-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        reader.join()


class BackgroundWriter:
    """Runs submitted calls in order on one worker thread, at most ``pending`` of them queued.

    Use as a context manager: leaving it waits for every call, and the first error is raised at the latest
    there (or at a later :meth:`submit`), so a result is never reported before its files exist.
    """

    def __init__(self, pending: int = 4) -> None:
        if pending < 1:
            raise ValueError(f"BackgroundWriter needs pending >= 1, got {pending}")
        self._pending = pending
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ovsnet-writer")
        self._futures: deque[Future[None]] = deque()

    def submit(self, write: Callable[..., None], *args: Any) -> None:
        """Queue ``write(*args)``; waits for the oldest call when ``pending`` are queued, raising its error."""
        while self._futures and (self._futures[0].done() or len(self._futures) >= self._pending):
            self._futures.popleft().result()
        self._futures.append(self._pool.submit(write, *args))

    def flush(self) -> None:
        """Wait for every queued write; raises the first error."""
        while self._futures:
            self._futures.popleft().result()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.flush()
            else:  # the caller failed: still finish what was queued, keep the caller's error
                for future in self._futures:
                    future.exception()
        finally:
            self._pool.shutdown(wait=True)
