"""Where the emulator keeps its files when the state directory asked for is out of the
servers' reach.

The servers run as their own accounts (``postgres``, ``mysql``), and each must enter every
directory above its data: a state directory under root's home (mode 0700) or pytest's
``/tmp/pytest-of-root`` fails as "initdb: could not access directory ... Permission denied".
Rather than refusing such a directory, the emulator keeps its files in a directory of its
own under the system temporary directory (named after the one asked for) and puts a
symbolic link where it was asked to be, so ``--state-dir`` works wherever the user can write.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SERVER_ACCOUNTS", "blocking_directory", "placement"]

#: The accounts the emulator's servers run as (PgBouncer runs as postgres).
SERVER_ACCOUNTS = ("postgres", "mysql")


def _may_enter(directory: Path, uid: int, groups: set[int]) -> bool:
    info = directory.stat()
    if uid == 0:
        return True
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def blocking_directory(path: Path, accounts: Iterable[str] = SERVER_ACCOUNTS) -> Path | None:
    """The first existing directory above ``path`` that one of ``accounts`` cannot enter.

    Accounts that do not exist (a server not installed) are not asked; ACLs are not read
    (the permission bits decide).
    """
    users = []
    for name in accounts:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        users.append((entry.pw_uid, set(os.getgrouplist(name, entry.pw_gid))))
    for directory in reversed(path.parents):
        if not directory.is_dir():
            break
        if not all(_may_enter(directory, uid, groups) for uid, groups in users):
            return directory
    return None


def placement(requested: Path) -> tuple[Path, Path | None]:
    """``(where the files live, the link to put at requested or None)`` for a state dir.

    A link made by an earlier start is followed; otherwise, when the servers could not
    reach ``requested``, the files go to ``<tmp>/sqlalchemy-rds-iam-<hash of requested>``.
    """
    elsewhere = Path(tempfile.gettempdir()) / (
        "sqlalchemy-rds-iam-" + hashlib.sha256(str(requested).encode()).hexdigest()[:12]
    )
    if requested.is_symlink():
        target = Path(os.path.realpath(requested))
        return target, (requested if target == elsewhere else None)
    if blocking_directory(requested) is None:
        return requested, None
    return elsewhere, requested

