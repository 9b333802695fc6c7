"""A Lambda SnapStart simulation against the emulator: init, snapshot, restore later, first query.

What Lambda does to a SnapStart function, played in one process against real servers:

1. **init** (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``): create the engine (default
   pool, no ``pool_pre_ping``), connect and query, signing with an identity of its own
   (keys in the environment, as an on-demand Lambda has them);
2. **snapshot**: the before-snapshot hooks run, as Lambda runs them (reverse order of
   registration, from ``snapshot_restore_py`` when installed);
3. **restore, later**: every token cache's clock moves ahead by ``later`` seconds (more
   than a token's 15-minute life); the environment switches to container credentials
   (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``) whose
   *new* keys a local :class:`~.credentials_endpoint.CredentialsEndpoint` serves; the init
   identity is retired (a token or credential kept from before the snapshot is refused);
   the server ends the sessions init opened (what a restored socket is: dead);
4. the after-restore hooks run (in order), then the **first query**, timed.

:meth:`SnapStartSimulation.run` returns a :class:`RestoreReport`: the time from restore to
first query, logins refused in between (0 when the hooks did their job), whether botocore
was imported by the restore. ``python -m sqlalchemy_rds_iam.testing.snapstart`` runs one in
a fresh process and prints the report as JSON (``bench/snapstart.py``, the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import string
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy_rds_iam.testing.credentials_endpoint import CredentialsEndpoint
from sqlalchemy_rds_iam.testing.emulator import Emulator
from sqlalchemy_rds_iam.testing.errors import EmulatorError
from sqlalchemy_rds_iam.testing.identities import session_token
from sqlalchemy_rds_iam.testing.info import Identity, ServerInfo

__all__ = ["DRIVERS", "RestoreReport", "SnapStartSimulation", "main"]

#: The drivers the simulation is run with, and the server each talks to.
DRIVERS = {"psycopg2": "postgresql", "asyncpg": "postgresql", "pymysql": "mysql"}
_ASYNC = {"asyncpg"}
_WHO = {"postgresql": "SELECT current_user", "mysql": "SELECT SUBSTRING_INDEX(USER(), '@', 1)"}
#: Variables the simulation sets or clears (and puts back as they were at the end).
_VARIABLES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_CONFIG_FILE",
)


@dataclass(frozen=True)
class RestoreReport:
    """What one simulated restore measured (seconds; counts from the verifier's log)."""

    driver: str
    hooks_seconds: float
    """The after-restore hooks (Lambda allows 10 s)."""
    first_query_seconds: float
    """From the hooks' end to the first query's result: credentials, token, dial, query."""
    refused_logins: int
    logins: int
    sessions_ended: int
    """Sessions of init that the server ended at restore (>= 1: the pool held one)."""
    hooks_registered: bool
    """Whether the package registered its hooks with ``snapshot_restore_py``."""
    botocore_at_restore: bool
    botocore_imported_by_restore: list[str]
    credential_requests: int
    """Requests the container credentials endpoint got after the restore."""
    who: str
    pool_pre_ping: bool
    """Whether the engine's pool pinged connections at checkout (the simulation: no)."""

    @property
    def restore_to_first_query(self) -> float:
        return self.hooks_seconds + self.first_query_seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "restore_to_first_query": self.restore_to_first_query}


def _identity(prefix: str, temporary: bool) -> Identity:
    alphabet = string.ascii_uppercase + "234567"
    key = ("ASIA" if temporary else "AKIA") + "".join(secrets.choice(alphabet) for _ in range(16))
    return Identity(f"{prefix}-{secrets.token_hex(3)}", key, secrets.token_urlsafe(30),
                    session_token() if temporary else None)


def _botocore_modules() -> set[str]:
    return {m for m in sys.modules if m.split(".")[0] in ("botocore", "boto3")}


def run_before_snapshot_hooks() -> bool:
    """Run the before-snapshot hooks as Lambda does (last registered first); without
    ``snapshot_restore_py``, the package's own. Returns whether the module was there."""
    try:
        import snapshot_restore_py
    except ImportError:
        import sqlalchemy_rds_iam

        sqlalchemy_rds_iam.before_snapshot()
        return False
    # Lambda pops them (a process is snapshotted once); a test process may simulate more.
    for func, args, kwargs in reversed(list(snapshot_restore_py.get_before_snapshot())):
        func(*args, **kwargs)
    return True


def run_after_restore_hooks() -> bool:
    """Run the after-restore hooks as Lambda does (in order of registration)."""
    try:
        import snapshot_restore_py
    except ImportError:
        import sqlalchemy_rds_iam

        sqlalchemy_rds_iam.after_restore()
        return False
    for func, args, kwargs in list(snapshot_restore_py.get_after_restore()):
        func(*args, **kwargs)
    return True


class SnapStartSimulation:
    """One SnapStart life cycle for ``driver`` against a running emulator (see the module).

    A context manager: the environment variables it touches are put back, its endpoint is
    closed and its identities retired at the end. ``hooks=False`` skips both hook runs
    (the negative control: without them the first query after the restore fails);
    ``via_botocore=True`` puts an empty AWS config file in play at the restore, so that
    botocore's chain fetches the container credentials (what the restore costs with it).
    """

    def __init__(self, emulator: Emulator, driver: str = "psycopg2", *, user: str = "iamuser",
                 later: float = 1800.0, hooks: bool = True, via_botocore: bool = False) -> None:
        if driver not in DRIVERS:
            raise EmulatorError(f"no simulation for {driver!r}; choose among {', '.join(DRIVERS)}")
        info = emulator.status()
        if info is None:
            raise EmulatorError(f"no emulator runs in {emulator.state_dir}; start it first")
        self.emulator, self.info, self.driver, self.user = emulator, info, driver, user
        self.server: ServerInfo = info.servers[DRIVERS[driver]]
        self.later, self.hooks, self.via_botocore = later, hooks, via_botocore
        self.init_identity = _identity("snapstart-init", temporary=False)
        self.restore_identity = _identity("snapstart-restore", temporary=True)
        self.endpoint: CredentialsEndpoint | None = None
        self.engine: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._saved = {name: os.environ.get(name) for name in _VARIABLES}
        self._config: str | None = None
        self._added: list[str] = []

    def __enter__(self) -> SnapStartSimulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the phases ------------------------------------------------------------------------

    def init(self, **engine_kwargs: Any) -> str:
        """The function's init: identity's keys in the environment, engine, connect, query."""
        self._add(self.init_identity)
        self._set_environment(self._keys_env(self.init_identity))
        os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
        url = self.server.url(self.user, self.driver)
        if self.driver in _ASYNC:
            from sqlalchemy.ext.asyncio import create_async_engine

            self._loop = asyncio.new_event_loop()
            self.engine = create_async_engine(url, **engine_kwargs)
        else:
            import sqlalchemy as sa

            self.engine = sa.create_engine(url, **engine_kwargs)
        return self.query()

    def snapshot(self) -> None:
        """Lambda takes the snapshot: the before-snapshot hooks run."""
        if self.hooks:
            run_before_snapshot_hooks()

    def restore(self) -> tuple[float, int]:
        """``later`` seconds on: new credentials from the container endpoint, init's identity
        retired, init's sessions ended; then the after-restore hooks. Returns (seconds the
        hooks took, sessions ended)."""
        from sqlalchemy_rds_iam import tokens

        for cache in list(tokens._CACHES):
            cache.advance(self.later)
        self._add(self.restore_identity)
        self.endpoint = CredentialsEndpoint(self.restore_identity)
        restored = {**self._region_env(), **self.endpoint.env()}
        if self.via_botocore:  # a config file in play: botocore's chain, not ours, asks
            import tempfile

            fd, self._config = tempfile.mkstemp(prefix="snapstart-aws-config-")
            os.close(fd)
            restored["AWS_CONFIG_FILE"] = self._config
        self._set_environment(restored)
        self.emulator.retire_identity(self.init_identity.name)
        self._added.remove(self.init_identity.name)
        ended = self.emulator.end_sessions(self.server.name, self.user)
        began = time.perf_counter()
        if self.hooks:
            run_after_restore_hooks()
        return time.perf_counter() - began, ended

    def query(self) -> str:
        """One query through the engine's pool (checkout, and a connect if need be)."""
        import sqlalchemy as sa

        statement = sa.text(_WHO[self.server.dialect])
        if self._loop is not None:
            async def run() -> Any:
                async with self.engine.connect() as conn:
                    return (await conn.execute(statement)).scalar()

            return str(self._loop.run_until_complete(run()))
        with self.engine.connect() as conn:
            return str(conn.execute(statement).scalar())

    def run(self, **engine_kwargs: Any) -> RestoreReport:
        """init -> snapshot -> restore -> first query; the report of the restore."""
        from sqlalchemy_rds_iam import snapshot

        self.init(**engine_kwargs)
        self.snapshot()
        botocore_before = _botocore_modules()
        offset = self.server.log_offset()
        hooks_seconds, ended = self.restore()
        began = time.perf_counter()
        who = self.query()
        first_query = time.perf_counter() - began
        verdicts = self.server.verifications(offset)
        assert self.endpoint is not None
        return RestoreReport(
            driver=self.driver,
            hooks_seconds=hooks_seconds,
            first_query_seconds=first_query,
            refused_logins=sum(not v.ok for v in verdicts),
            logins=sum(v.ok for v in verdicts),
            sessions_ended=ended,
            hooks_registered=snapshot.hooks_registered(),
            botocore_at_restore=bool(botocore_before),
            botocore_imported_by_restore=sorted(_botocore_modules() - botocore_before),
            credential_requests=len(self.endpoint.requests),
            who=who,
            pool_pre_ping=bool(getattr(self.engine, "sync_engine", self.engine).pool._pre_ping),
        )

    def close(self) -> None:
        """Dispose of the engine, close the endpoint, retire identities, restore variables."""
        with contextlib.suppress(Exception):
            if self.engine is not None and self._loop is not None:
                self._loop.run_until_complete(self.engine.dispose())
            elif self.engine is not None:
                self.engine.dispose()
        if self._loop is not None:
            self._loop.close()
        if self.endpoint is not None:
            self.endpoint.close()
        for name in self._added:
            with contextlib.suppress(EmulatorError):
                self.emulator.retire_identity(name)
        self._added.clear()
        if self._config is not None:
            os.unlink(self._config)
            self._config = None
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    # -- helpers ---------------------------------------------------------------------------

    def _add(self, identity: Identity) -> None:
        self.info = self.emulator.add_identity(identity)
        self._added.append(identity.name)

    def _region_env(self) -> dict[str, str]:
        return {"AWS_REGION": self.info.region, "AWS_DEFAULT_REGION": self.info.region}

    def _keys_env(self, identity: Identity) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": identity.access_key_id,
               "AWS_SECRET_ACCESS_KEY": identity.secret_access_key, **self._region_env()}
        if identity.session_token:
            env["AWS_SESSION_TOKEN"] = identity.session_token
        return env

    def _set_environment(self, values: dict[str, str]) -> None:
        """Exactly these AWS variables (of those the simulation manages), and no others."""
        for name in _VARIABLES:
            if name != "AWS_LAMBDA_INITIALIZATION_TYPE":
                os.environ.pop(name, None)
        os.environ.update(values)


def main(argv: list[str] | None = None) -> int:
    """Run one simulation in this (fresh) process and print its report as JSON."""
    parser = argparse.ArgumentParser(prog="python -m sqlalchemy_rds_iam.testing.snapstart")
    parser.add_argument("--state-dir", default=None, help="the running emulator's state dir")
    parser.add_argument("--driver", default="psycopg2", choices=sorted(DRIVERS))
    parser.add_argument("--later", type=float, default=1800.0,
                        help="seconds between snapshot and restore (default: 1800)")
    parser.add_argument("--via-botocore", action="store_true",
                        help="restore with an (empty) AWS config file in play, so that "
                        "botocore's chain fetches the container credentials (for comparison)")
    parser.add_argument("--no-hooks", action="store_true",
                        help="skip the hooks (the negative control)")
    args = parser.parse_args(argv)
    emulator = Emulator(args.state_dir)
    try:
        with SnapStartSimulation(emulator, args.driver, later=args.later,
                                 hooks=not args.no_hooks,
                                 via_botocore=args.via_botocore) as simulation:
            report = simulation.run()
    except Exception as exc:  # the negative control fails here: report how
        print(json.dumps({"driver": args.driver, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(report.to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
