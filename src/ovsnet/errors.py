"""One line instead of a traceback for the mistakes a user can fix: bad input, and Ctrl-C.

Used by the training run, ``evaluate.py`` and the command-line programs, so it sits below all of them
(it imports ``data.io`` only). The project's own errors (:class:`~ovsnet.data.io.DataError`, which every data and checkpoint problem
raises, naming the file) are printed as ``<program>: error: <message>`` with exit code 2; Ctrl-C prints one
line saying how to resume, with exit code 130. ``HYDRA_FULL_ERROR=1`` keeps the full traceback for
debugging. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from ovsnet.data.io import DataError

__all__ = ["EXIT_INPUT_ERROR", "EXIT_INTERRUPTED", "full_errors", "one_line_errors"]

EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def full_errors() -> bool:
    """Whether the user asked for full tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


@contextlib.contextmanager
def one_line_errors(program: str, resume_hint: str | None = None) -> Iterator[None]:
    """Turn a :class:`DataError` or a Ctrl-C inside the block into one line on stderr and ``SystemExit``.

    ``resume_hint`` finishes the interruption line (``rerun the same command to resume``).
    """
    try:
        yield
    except KeyboardInterrupt:
        if full_errors():
            raise
        hint = f"; {resume_hint}" if resume_hint else ""
        sys.stderr.write(f"\n{program}: interrupted{hint}\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except DataError as exc:
        if full_errors():
            raise
        sys.stderr.write(f"{program}: error: {exc}\n")
        raise SystemExit(EXIT_INPUT_ERROR) from None
