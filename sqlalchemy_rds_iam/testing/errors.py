"""Errors of the local RDS IAM emulator, under the package's root ``RdsIamError``.

    RdsIamError
    └── EmulatorError                 the emulator could not start, stop or report
        ├── EmulatorNeedsRootError    not root: /etc/pam.d and server users need it
        ├── ServerBinariesMissingError  PostgreSQL, MariaDB or PgBouncer is not installed
        └── ServerNotRunningError     this emulator runs without the server asked for

The pytest plugin skips only on ``ServerBinariesMissingError``: everything else is a failure.
"""

from __future__ import annotations

from sqlalchemy_rds_iam.errors import RdsIamError

__all__ = [
    "EmulatorError",
    "EmulatorNeedsRootError",
    "ServerBinariesMissingError",
    "ServerNotRunningError",
]


class EmulatorError(RdsIamError):
    """The emulator could not do what was asked; the message says what and where to look."""


class EmulatorNeedsRootError(EmulatorError):
    """The emulator must run as root: it writes /etc/pam.d and runs servers as their users."""


class ServerBinariesMissingError(EmulatorError):
    """A server binary the emulator needs is not installed on this machine."""

    def __init__(
        self,
        missing: list[str],
        packages: str = "postgresql mariadb-server mariadb-client pgbouncer gcc libpam0g-dev",
    ) -> None:
        self.missing = list(missing)
        self.packages = packages
        super().__init__(
            "the RDS IAM emulator needs these programs, which are not installed: "
            + "; ".join(self.missing)
            + f" (Debian: apt-get install {packages})"
        )


class ServerNotRunningError(EmulatorError, KeyError):
    """The emulator runs without this server (not installed, or left out with ``servers=``).

    Also a ``KeyError``, as ``info.servers[name]`` raised before servers became optional.
    The pytest plugin turns it into a skip naming the Debian package.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"the emulator runs without {name}: {reason}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
