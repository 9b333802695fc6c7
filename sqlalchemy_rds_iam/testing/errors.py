"""Errors of the local RDS IAM emulator, under the package's root ``RdsIamError``.

    RdsIamError
    └── EmulatorError                 the emulator could not start, stop or report
        ├── EmulatorNeedsRootError    not root: /etc/pam.d and server users need it
        └── ServerBinariesMissingError  PostgreSQL, MariaDB or PgBouncer is not installed

The pytest plugin skips only on ``ServerBinariesMissingError``: everything else is a failure.
"""

from __future__ import annotations

from sqlalchemy_rds_iam.errors import RdsIamError

__all__ = ["EmulatorError", "EmulatorNeedsRootError", "ServerBinariesMissingError"]


class EmulatorError(RdsIamError):
    """The emulator could not do what was asked; the message says what and where to look."""


class EmulatorNeedsRootError(EmulatorError):
    """The emulator must run as root: it writes /etc/pam.d and runs servers as their users."""


class ServerBinariesMissingError(EmulatorError):
    """A server binary the emulator needs is not installed on this machine."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            "the RDS IAM emulator needs these programs, which are not installed: "
            + ", ".join(self.missing)
            + " (Debian: apt-get install postgresql mariadb-server mariadb-client pgbouncer)"
        )
