"""The emulator's PAM service files: written on start, removed (and any original restored) on stop.

Each file sends the password (the IAM token) to the verifier script on stdin through
``pam_exec.so expose_authtok``. A marker line names the owning state directory, so that a
later run can tell its own (possibly stale) files from the machine's: it never deletes a file
it did not write, and it backs up a pre-existing one (PgBouncer's service name is fixed to
``pgbouncer``) to restore it on stop.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy_rds_iam.testing.errors import EmulatorError

__all__ = ["MARKER", "install", "owner_of", "remove", "service_text"]

PAM_DIR = Path("/etc/pam.d")
MARKER = "# sqlalchemy-rds-iam emulator, state_dir="
PYTHON = "/usr/bin/python3"


def service_text(state_dir: Path, verifier: Path, config: Path, service: str) -> str:
    """The PAM stack for one server: the verifier decides, account checks are a no-op."""
    for part in (verifier, config):
        if any(c.isspace() for c in str(part)):
            # pam_exec splits its arguments on white space, with no quoting.
            raise EmulatorError(f"the emulator's state directory must not contain spaces: {part}")
    # -I -S: isolated mode (no PYTHON* variables, no user site) and no site import: the
    # verifier is standard library only, and this saves startup time on every login.
    return (
        f"{MARKER}{state_dir}\n"
        "# Written by sqlalchemy_rds_iam.testing; `sqlalchemy-rds-iam emulator stop` removes it.\n"
        f"auth required pam_exec.so expose_authtok quiet {PYTHON} -I -S {verifier}"
        f" --config {config} --service {service}\n"
        "account required pam_permit.so\n"
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
