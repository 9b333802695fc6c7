"""A local RDS IAM emulator: real servers that accept only valid IAM tokens, for tests.

PostgreSQL, MariaDB and PgBouncer (the RDS Proxy stand-in) run privately under a state
directory and hand every password to :mod:`~sqlalchemy_rds_iam.testing.verifier`, which
checks the token as RDS does. Use it from the command line (``sqlalchemy-rds-iam emulator
start --json``), from pytest (fixtures ``rds_iam_emulator`` and ``rds_iam_aws_env``), or here::

    from sqlalchemy_rds_iam.testing import Emulator
    info = Emulator().start()              # idempotent; needs root for /etc/pam.d
    engine = create_engine(info.postgresql.url("iamuser"))

Starting the emulator needs the ``[testing]`` extra (``pip install
'sqlalchemy-rds-iam[testing]'``); importing this package is cheap: no botocore, SQLAlchemy
or cryptography.
"""

from __future__ import annotations

from sqlalchemy_rds_iam.testing.emulator import (
    DEFAULT_REGION,
    DEFAULT_STATE_DIR,
    STATE_DIR_ENV,
    Emulator,
    default_state_dir,
)
from sqlalchemy_rds_iam.testing.errors import (
    EmulatorError,
    EmulatorNeedsRootError,
    ServerBinariesMissingError,
)
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity, ServerInfo, Verification
from sqlalchemy_rds_iam.testing.presign import presign_token
from sqlalchemy_rds_iam.testing.verifier import (
    Credential,
    Verdict,
    token_fingerprint,
    verify_token,
)

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_STATE_DIR",
    "STATE_DIR_ENV",
    "Credential",
    "Emulator",
    "EmulatorError",
    "EmulatorInfo",
    "EmulatorNeedsRootError",
    "Identity",
    "ServerBinariesMissingError",
    "ServerInfo",
    "Verdict",
    "Verification",
    "default_state_dir",
    "presign_token",
    "token_fingerprint",
    "verify_token",
]
