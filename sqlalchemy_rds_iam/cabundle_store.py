"""The CA files we write and read back: in a directory of this user's that no one else can write.

A file another account could have written (or swapped for a link) is no root of ours, so
every stored bundle is checked before it is trusted, and written atomically into a 0700
directory. :mod:`.cabundle` imports this module only when such a file is in play (a bundle
``ca update`` stored, a combined bundle to write): a connect with the bundles shipped in the
wheel, or with ``iam_ca_bundle=``, never does.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import RdsIamError

__all__ = ["digest", "keep", "not_private", "private_dir", "store_atomically", "tmp_dir"]


def digest(data: bytes) -> str:
    """A short content hash: the name of a file written from ``data``."""
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def tmp_dir() -> Path:
    """Our directory under ``$TMPDIR``: one per account, so no other user can pre-empt it."""
    import tempfile

    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    return Path(tempfile.gettempdir()) / f"sqlalchemy-rds-iam-{uid}"


def not_private(path: Path, *, directory: bool = False) -> str | None:
    """Why another account could have written ``path`` (or it is missing), else ``None``."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    kind = stat.S_ISDIR if directory else stat.S_ISREG
    if not kind(st.st_mode):
        return f"it is not a {'directory' if directory else 'regular file'} (a link?)"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"its mode {stat.S_IMODE(st.st_mode):o} lets other users write to it"
    return None


def private_dir(directory: Path) -> Path:
    """``directory``, created with mode 0700, or an existing one of this user's that no one
    else can write to (tightened to 0700); raises :class:`RdsIamError` otherwise."""
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    problem = not_private(directory, directory=True)
    if problem:
        raise RdsIamError(f"refusing to write CA bundles to {directory}: {problem}")
    if os.stat(directory).st_mode & 0o077:
        os.chmod(directory, 0o700)
    return directory


def store_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` in a private directory: readers see the old file or the
    new one, never half of it."""
    import tempfile

    private_dir(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".bundle-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def keep(directory: Path, data: bytes, prefix: str) -> Path:
    """``data`` in ``directory``, in a file named by ``prefix`` and its :func:`digest`; a file
    of that name whose content does not hash to it (planted, truncated) or that is not
    private is written anew."""
    name = digest(data)
    target = private_dir(directory) / f"{prefix}-{name}.pem"
    if not_private(target) or digest(target.read_bytes()) != name:
        store_atomically(target, data)
    return target
