"""Frames read ahead and results written behind the segmenter: same order, every error where it belongs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from ovsnet.inference.overlap import BackgroundWriter, prefetched


def test_prefetched_yields_the_same_items_in_order_from_another_thread() -> None:
    readers: set[str] = set()

    def items() -> Iterator[int]:
        for i in range(20):
            readers.add(threading.current_thread().name)
            yield i

    assert list(prefetched(items(), depth=3)) == list(range(20))
    assert readers == {"ovsnet-prefetch"}
    assert list(prefetched([])) == []
    with pytest.raises(ValueError, match="depth"):
        next(prefetched([1], depth=0))


def test_prefetched_raises_a_read_error_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("frame 00002.jpg is corrupt")

    got = []
    with pytest.raises(OSError, match="00002.jpg"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_closing_prefetched_early_stops_the_reader() -> None:
    read = []

    def items() -> Iterator[int]:
        for i in range(1000):
            read.append(i)
            yield i

    ahead = prefetched(items(), depth=2)
    assert next(ahead) == 0
    ahead.close()
    assert not any(t.name == "ovsnet-prefetch" for t in threading.enumerate())
    assert len(read) <= 5  # the reader stopped a few items ahead, not at the end


def test_background_writer_runs_every_write_in_order_before_leaving() -> None:
    done: list[int] = []

    def write(i: int) -> None:
        time.sleep(0.002)
        done.append(i)

    with BackgroundWriter(pending=2) as writer:
        for i in range(10):
            writer.submit(write, i)
    assert done == list(range(10))


def test_background_writer_raises_a_write_error_and_finishes_the_others() -> None:
    done: list[int] = []

    def write(i: int) -> None:
        if i == 3:
            raise OSError("disk full writing 00003.png")
        done.append(i)

    with pytest.raises(OSError, match="00003.png"), BackgroundWriter(pending=8) as writer:
        for i in range(6):
            writer.submit(write, i)
    assert done == [0, 1, 2, 4, 5]
    with pytest.raises(RuntimeError, match="caller"), BackgroundWriter() as writer:
        writer.submit(write, 7)
        raise RuntimeError("the caller failed")
    assert done[-1] == 7  # queued work is still written when the caller fails
    with pytest.raises(ValueError, match="pending"):
        BackgroundWriter(pending=0)
