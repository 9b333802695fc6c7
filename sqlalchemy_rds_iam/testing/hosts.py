"""The emulator's ``/etc/hosts`` lines: real-looking AWS names resolved to 127.0.0.1.

Every line the emulator writes ends with a marker naming its state directory, so that stop
removes exactly its own lines and never touches any other; lines of an emulator whose state
directory is gone (a crashed run) are removed by the next start. The file is rewritten
atomically (a temporary file renamed over it), so a resolver never reads half of it; where
``/etc/hosts`` is a bind mount (containers), rename is impossible and it is rewritten in
place under the emulator's machine-wide lock.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["HOSTS_FILE", "MARKER", "add", "owners", "remove"]

HOSTS_FILE = Path(os.environ.get("SQLALCHEMY_RDS_IAM_HOSTS_FILE", "/etc/hosts"))
MARKER = "# sqlalchemy-rds-iam emulator, state_dir="


def _owner(line: str) -> str | None:
    _, sep, owner = line.partition(MARKER)
    return owner.strip() if sep else None


def owners(path: Path = HOSTS_FILE) -> dict[str, list[str]]:
    """State directory -> the names its lines resolve (what ``emulator status`` can show)."""
    result: dict[str, list[str]] = {}
    for line in _read(path):
        owner = _owner(line)
        if owner is not None:
            result.setdefault(owner, []).extend(line.partition("#")[0].split()[1:])
    return result


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _keep(line: str, state_dir: Path) -> bool:
    """Whether a line survives: not ours, and not a dead emulator's."""
    owner = _owner(line)
    return owner is None or (owner != str(state_dir) and Path(owner).is_dir())


def _write(path: Path, lines: list[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        st = path.stat()
        mode = st.st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        if exc.errno not in (errno.EBUSY, errno.EXDEV, errno.EPERM):
            raise
        path.write_text(text, encoding="utf-8")  # a bind-mounted file cannot be replaced


def add(state_dir: Path, names: Iterable[str], path: Path = HOSTS_FILE) -> None:
    """Resolve ``names`` to 127.0.0.1 (one marked line), dropping this and dead emulators' lines."""
    lines = [line for line in _read(path) if _keep(line, state_dir)]
    wanted = " ".join(dict.fromkeys(names))
    if wanted:
        lines.append(f"127.0.0.1 {wanted} {MARKER}{state_dir}")
    _write(path, lines)


def remove(state_dir: Path, path: Path = HOSTS_FILE) -> None:
    """Remove this emulator's lines (and dead emulators'); every other line is kept as is."""
    lines = _read(path)
    kept = [line for line in lines if _keep(line, state_dir)]
    if kept != lines:
        _write(path, kept)
