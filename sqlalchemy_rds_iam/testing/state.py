"""The emulator's state file: what runs (pids), what clients need (info), who keeps it.

One JSON file, ``state.json`` in the state directory, root's with mode 0600 (it holds the
throwaway secret keys), replaced atomically so that a reader never sees half of it. Pids are
recorded the moment each process exists, so that a start that fails halfway can always be
cleaned up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy_rds_iam.testing.errors import EmulatorNeedsRootError

__all__ = ["StateFile"]

_VERSION = 3  # 3: the TLS relay and the real-looking endpoints


class StateFile:
    """Read and write ``state.json``; :meth:`record_pid` is safe from several threads."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {}

    def read(self) -> dict[str, Any] | None:
        """The state, or None if absent, unreadable or from another version of the code."""
        try:
            state: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except PermissionError as exc:
            raise EmulatorNeedsRootError(
                f"cannot read {self.path}: the emulator's state is root's (it holds "
                "the throwaway secret keys); run as root"
            ) from exc
        except (OSError, ValueError):
            return None
        return state if state.get("version") == _VERSION else None

    def foreign_pids(self) -> list[int]:
        """Pids recorded by another version of this code (whose state :meth:`read` ignores)."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if not isinstance(state, dict) or state.get("version") == _VERSION:
            return []
        pids = state.get("pids")
        if not isinstance(pids, dict):
            return []
        return [pid for pid in pids.values() if isinstance(pid, int)]

    def begin(self) -> None:
        """Start a fresh state (nothing running yet)."""
        self._state = {"version": _VERSION, "pids": {}, "started": time.time()}
        self.write(self._state)

    def record_pid(self, name: str, pid: int) -> None:
        """Record a process of the state being built, at once."""
        with self._lock:
            self._state["pids"][name] = pid
            self.write(self._state)

    def finish(self, info: dict[str, Any]) -> None:
        """Record the info of a fully started emulator."""
        with self._lock:
            self._state["info"] = info
            self._state["ready"] = time.time()
            self.write(self._state)

    def write(self, state: dict[str, Any]) -> None:
        """Replace the file with ``state`` atomically."""
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
        os.replace(tmp, self.path)
