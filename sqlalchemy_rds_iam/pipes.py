"""The command line's answer to a reader that stops early (``... | head -2``).

Python ignores SIGPIPE, so a write to a pipe whose reader has gone raises
``BrokenPipeError``, and the final flush at exit prints "Exception ignored ... BrokenPipeError"
after the traceback. The recipe from Python's ``signal`` documentation: catch it, point
stdout at /dev/null so that the interpreter's last flush has nowhere to fail, and exit with
the status a shell gives a process killed by SIGPIPE.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from typing import Protocol

__all__ = ["SIGPIPE_EXIT", "survives_closed_stdout"]

#: 128 + SIGPIPE: what ``yes | head -1`` reports for ``yes`` (``set -o pipefail`` sees it).
SIGPIPE_EXIT = 141

def _stdout_to_devnull() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stdout (tests): nothing to do
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


class Main(Protocol):
    """A command line's ``main(argv=None) -> exit status``."""

    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def survives_closed_stdout(main: Main) -> Main:
    """Wrap a ``main(argv) -> int``: a closed stdout ends it quietly with :data:`SIGPIPE_EXIT`.

    stdout is flushed inside the guard (also when ``main`` exits through ``SystemExit``, as
    ``--help`` does), so the error cannot surface later, at interpreter shutdown.
    """

    @functools.wraps(main)
    def guarded(argv: Sequence[str] | None = None) -> int:
        try:
            try:
                return main(argv)
            finally:
                sys.stdout.flush()
        except BrokenPipeError:
            _stdout_to_devnull()
            return SIGPIPE_EXIT

    return guarded
