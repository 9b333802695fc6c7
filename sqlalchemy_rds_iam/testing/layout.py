"""Where one emulator's files and names are: everything derived from its state directory.

:mod:`~sqlalchemy_rds_iam.testing.launch` starts, restarts and tears down servers from a
:class:`Layout` alone, so it does not need (nor import) the
:class:`~sqlalchemy_rds_iam.testing.emulator.Emulator` that decides when to do so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy_rds_iam.testing import wiring
from sqlalchemy_rds_iam.testing.state import StateFile

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    """The paths and PAM service names of the emulator rooted at ``state_dir``.

    ``link`` (None: no link) points at ``state_dir`` from the directory asked for when the
    servers' accounts could not enter that one (see ``access``).
    """

    state_dir: Path
    link: Path | None = None
    pam_services: dict[str, str] = field(init=False)
    state: StateFile = field(init=False)
    verifier: wiring.VerifierFiles = field(init=False)

    def __post_init__(self) -> None:
        # Two state dirs on one machine never share a PAM file: the name carries the dir's hash.
        tag = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:8]
        services = {
            "postgresql": f"sqlalchemy-rds-iam-{tag}-postgresql",
            "mysql": f"sqlalchemy-rds-iam-{tag}-mysql",
            # Inside PgBouncer's own mount namespace: the name it has compiled in.
            "pgbouncer": "pgbouncer",
        }
        object.__setattr__(self, "pam_services", services)
        object.__setattr__(self, "state", StateFile(self.state_dir))
        object.__setattr__(self, "verifier", wiring.VerifierFiles(self.state_dir))

    @property
    def backup_dir(self) -> Path:
        """Where PAM files that ours replaced wait to be restored."""
        return self.state_dir / "pam-backup"
