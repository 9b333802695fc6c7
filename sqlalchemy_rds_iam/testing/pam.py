"""The emulator's PAM service files: written on start, removed (and any original restored) on stop.

Each file loads the emulator's PAM module, which sends the password (the IAM token) to the
verifier process (see :mod:`~sqlalchemy_rds_iam.testing.wiring`). A marker line names the
owning state directory, so that a later run can tell its own (possibly stale) files from the
machine's: it never deletes a file it did not write, and it backs up a pre-existing one to
restore it on stop. PgBouncer, whose service name is fixed, gets its file in a private mount
namespace instead (see :class:`~sqlalchemy_rds_iam.testing.servers.PgBouncerServer`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["MARKER", "install", "owner_of", "remove", "service_text"]

PAM_DIR = Path("/etc/pam.d")
MARKER = "# sqlalchemy-rds-iam emulator, state_dir="


def service_text(state_dir: Path, stack: str) -> str:
    """A PAM file: the owner marker, then ``stack`` (see :func:`wiring.pam_stack`)."""
    return (
        f"{MARKER}{state_dir}\n"
        "# Written by sqlalchemy_rds_iam.testing; `sqlalchemy-rds-iam emulator stop` removes it.\n"
        + stack
    )


def owner_of(path: Path) -> str | None:
    """The state directory named in an emulator PAM file, or None if the file is not ours."""
    try:
        first = path.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
    except FileNotFoundError:
        return None
    if first and first[0].startswith(MARKER):
        return first[0][len(MARKER) :]
    return None


def install(name: str, text: str, state_dir: Path, backup_dir: Path) -> Path:
    """Write ``/etc/pam.d/<name>``, backing up a pre-existing file that is not ours."""
    path = PAM_DIR / name
    if path.exists() and owner_of(path) is None:
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / name
        if not backup.exists():
            shutil.copy2(path, backup)
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


def remove(name: str, state_dir: Path, backup_dir: Path) -> None:
    """Remove our ``/etc/pam.d/<name>`` if this state dir owns it; restore the backup."""
    path = PAM_DIR / name
    owner = owner_of(path)
    if owner == str(state_dir):
        path.unlink()
        owner = None
    backup = backup_dir / name
    if backup.exists() and not path.exists():
        shutil.copy2(backup, path)
        backup.unlink()
