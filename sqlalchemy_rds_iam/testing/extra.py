"""Whether the ``[testing]`` extra is installed: the emulator's one check before it starts.

A pip user who installed only a driver extra has no ``cryptography``, which the emulator
needs to make its throwaway CA. Without this check the first start ends in a
``ModuleNotFoundError`` traceback from deep inside the start; with it, the CLI and the
pytest plugin say in one line which extra to install.
"""

from __future__ import annotations

from sqlalchemy_rds_iam.testing.errors import EmulatorError

__all__ = ["INSTALL_TESTING", "MissingTestingExtraError", "require_testing_extra"]

#: The command that installs what the emulator and the pytest fixtures need.
INSTALL_TESTING = "pip install 'sqlalchemy-rds-iam[testing]'"


class MissingTestingExtraError(EmulatorError):
    """The ``[testing]`` extra (``cryptography``) is not installed."""


def require_testing_extra() -> None:
    """Raise :class:`MissingTestingExtraError` unless ``cryptography`` imports.

    An import, not a look-up: a broken install (a wheel for another platform) fails here
    too. It costs nothing extra, since the start imports it right after.
    """
    try:
        import cryptography.x509  # noqa: F401
    except ImportError as exc:
        raise MissingTestingExtraError(
            f"the RDS IAM emulator needs the [testing] extra ({exc}): {INSTALL_TESTING}"
        ) from None
