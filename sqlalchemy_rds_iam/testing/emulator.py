"""Start, inspect, change and stop the local RDS IAM emulator: lifecycle and locking.

The emulator is real servers that accept only valid IAM tokens, the way RDS does:
PostgreSQL (PAM for members of ``rds_iam``, SCRAM passwords for others), MariaDB
(``auth_pam`` with ``mysql_clear_password``, plus one password user) and PgBouncer in front
of PostgreSQL (the stand-in for RDS Proxy). Their PAM stacks hand each password to one
long-running verifier process (see :mod:`~sqlalchemy_rds_iam.testing.wiring`), which
recomputes the token's SigV4 signature against a table of identities, and can throttle new
tokens as RDS does.

Everything lives under one state directory (default ``/tmp/sqlalchemy-rds-iam-emulator``,
or ``$SQLALCHEMY_RDS_IAM_EMULATOR_DIR``), plus one ``/etc/pam.d`` file per database server.
``start`` is idempotent: a live emulator is reused, a stale one (crashed run) is cleaned up
and started afresh. ``stop`` ends the processes, removes the PAM files (restoring any file
they replaced) and deletes the state directory. Root is required: only root writes
``/etc/pam.d``.

    >>> from sqlalchemy_rds_iam.testing import Emulator
    >>> info = Emulator().start()
    >>> info.postgresql.url("iamuser")
    'postgresql+psycopg2://iamuser@localhost:41234/app?plugin=rds_iam&aws_region=...'
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy_rds_iam.testing import access, launch, pam, processes, servers, wiring
from sqlalchemy_rds_iam.testing.errors import EmulatorError, EmulatorNeedsRootError
from sqlalchemy_rds_iam.testing.extra import require_testing_extra
from sqlalchemy_rds_iam.testing.identities import make_identities, reconfigure, session_token
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity
from sqlalchemy_rds_iam.testing.layout import Layout
from sqlalchemy_rds_iam.testing.state import StateFile

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_STATE_DIR",
    "STATE_DIR_ENV",
    "Emulator",
    "default_state_dir",
    "make_identities",
    "session_token",
]

DEFAULT_STATE_DIR = Path("/tmp/sqlalchemy-rds-iam-emulator")  # noqa: S108 -- private, 0755 root
STATE_DIR_ENV = "SQLALCHEMY_RDS_IAM_EMULATOR_DIR"
DEFAULT_REGION = "us-east-1"


def default_state_dir() -> Path:
    """``$SQLALCHEMY_RDS_IAM_EMULATOR_DIR`` if set, else ``/tmp/sqlalchemy-rds-iam-emulator``."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


class Emulator:
    """The emulator rooted at one state directory; cheap to create, does nothing until asked.

    ``servers`` picks which to run (default: every one installed; a server asked for but not
    installed is an error). ``identities`` are added to the throwaway ones; ``rate_limit`` is
    RDS's IAM throttle (new tokens per second per server; None leaves it as it is, 0 turns it
    off). On an emulator that already runs, :meth:`start` applies ``identities`` and
    ``rate_limit`` to it.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        region: str = DEFAULT_REGION,
        pgbouncer: bool = True,
        servers: Sequence[str] | None = None,
        identities: Iterable[Identity] = (),
        rate_limit: int | None = None,
    ) -> None:
        path = Path(state_dir) if state_dir is not None else default_state_dir()
        #: Where the files are and what they are called (see :class:`~.layout.Layout`).
        self.layout = Layout(*access.placement(path.absolute()))
        self.region = region
        unknown = set(servers or ()) - set(launch.SERVER_CLASSES)
        if unknown:
            raise EmulatorError(
                f"unknown server(s) {', '.join(sorted(unknown))}; choose among "
                + ", ".join(launch.SERVER_CLASSES)
            )
        self.requested = tuple(servers) if servers is not None else None
        self.with_pgbouncer = pgbouncer
        self.extra_identities = {i.name: i for i in identities}
        if rate_limit is not None and rate_limit < 0:
            raise EmulatorError("the IAM rate limit is a number of new tokens per second, >= 0")
        self.rate_limit = rate_limit

    @property
    def state_dir(self) -> Path:
        return self.layout.state_dir

    @property
    def link(self) -> Path | None:
        return self.layout.link

    @property
    def pam_services(self) -> dict[str, str]:
        return self.layout.pam_services

    @property
    def state(self) -> StateFile:
        return self.layout.state

    @property
    def verifier(self) -> wiring.VerifierFiles:
        return self.layout.verifier

    @property
    def state_file(self) -> Path:
        return self.state.path

    @property
    def backup_dir(self) -> Path:
        """Where PAM files that ours replaced wait to be restored."""
        return self.layout.backup_dir

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # One lock for all emulators on the machine: a start or stop takes seconds and
        # writes /etc/pam.d. Not in the state dir, which start/stop create/delete.
        lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
        with open(lock_dir / "sqlalchemy-rds-iam-emulator.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _require_root(what: str) -> None:
        if os.geteuid() != 0:
            raise EmulatorNeedsRootError(
                f"{what} needs root: it writes PAM services to /etc/pam.d and runs the "
                "servers as their own system users (postgres, mysql); run it as root "
                "(e.g. with sudo)"
            )

    # -- inspection -----------------------------------------------------------------------

    def _alive(self, state: dict[str, Any]) -> bool:
        pids: dict[str, int] = state.get("pids", {})
        if "info" not in state or set(pids) != {*state["info"]["servers"], "verifier", "relay"}:
            return False
        for name, pid in pids.items():
            names = (
                launch.VERIFIER_NAMES
                if name in ("verifier", "relay")
                else launch.SERVER_CLASSES[name].process_names
            )
            if not processes.process_alive(pid, names):
                return False
        return all(
            pam.owner_of(pam.PAM_DIR / server["pam_service"]) == str(self.state_dir)
            for name, server in state["info"]["servers"].items()
            if name != "pgbouncer"
        )

    def status(self) -> EmulatorInfo | None:
        """The running emulator's info, or None when it is not (fully) running."""
        state = self.state.read()
        if state is None or not self._alive(state):
            return None
        return EmulatorInfo.from_dict(state["info"])

    # -- start ----------------------------------------------------------------------------

    def start(self) -> EmulatorInfo:
        """Start the emulator, or return the running one's info; it runs until :meth:`stop`.

        An emulator started or reused this way is never stopped by :meth:`release`.
        """
        return self.ensure_started(keep=True)[0]

    def ensure_started(self, *, keep: bool = False) -> tuple[EmulatorInfo, bool]:
        """Like :meth:`start`; also says whether this call started it (True) or reused it.

        ``keep=False`` (the pytest fixture) leaves the decision to stop to :meth:`release`.
        """
        binaries = servers.find_binaries()
        names = launch.plan_servers(binaries, self.requested, pgbouncer=self.with_pgbouncer)
        self._require_root("the RDS IAM emulator")
        with self._lock():
            info = self.status()
            started = info is None
            if info is None:
                require_testing_extra()
                self._refuse_foreign()
                launch.teardown(self.layout)
                self._make_link()
                try:
                    info = launch.Launch(
                        self.layout,
                        region=self.region,
                        identities=self.extra_identities,
                        rate_limit=self.rate_limit,
                    ).run(binaries, names)
                except BaseException:
                    launch.teardown(self.layout)
                    raise
            elif self.extra_identities or self.rate_limit is not None:
                info = reconfigure(
                    self.state,
                    self.verifier,
                    add=self.extra_identities.values(),
                    rate_limit=self.rate_limit,
                )
            if keep:
                state = self.state.read()
                if state is not None and not state.get("keep"):
                    state["keep"] = True
                    self.state.write(state)
            return info, started

    def _refuse_foreign(self) -> None:
        """Never clean up an emulator that another version of this package runs here."""
        alive = [pid for pid in self.state.foreign_pids() if processes.process_alive(pid)]
        if alive:
            raise EmulatorError(
                f"an emulator started by another version of sqlalchemy-rds-iam runs in "
                f"{self.state_dir} (pids {', '.join(map(str, alive))}); stop it with that "
                "version, or use another state directory (--state-dir, "
                f"${STATE_DIR_ENV}, --rds-iam-emulator-dir)"
            )


    def _make_link(self) -> None:
        """Put the link to :attr:`state_dir` where the state directory was asked to be."""
        if self.link is None:
            return
        if self.link.is_symlink():
            self.link.unlink()
        elif self.link.exists():
            try:
                self.link.rmdir()  # an empty directory, e.g. made by an earlier failed start
            except OSError:
                raise EmulatorError(
                    f"{self.link} already exists: the emulator keeps its files in "
                    f"{self.state_dir} and links them from there, because its servers "
                    f"({', '.join(access.SERVER_ACCOUNTS)}) cannot enter "
                    f"{access.blocking_directory(self.link)}; remove {self.link}, or choose "
                    "a state directory they can enter"
                ) from None
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.symlink_to(self.state_dir, target_is_directory=True)

    # -- faults -----------------------------------------------------------------------------

    def restart(self, server: str) -> EmulatorInfo:
        """Stop one server (``postgresql``, ``mysql``, ``pgbouncer``) and start it again.

        Same port, data, certificate and PAM wiring; returns once it accepts logins again.
        Every connection to it drops, as in a database restart or failover: for fault tests
        (pooled engines, ``pool_pre_ping``). Use a private emulator (its own state dir) so
        that tests sharing the default one are not disturbed.
        """
        if server not in launch.SERVER_CLASSES:
            raise EmulatorError(
                f"unknown server {server!r}; choose among " + ", ".join(launch.SERVER_CLASSES)
            )
        self._require_root("restarting an emulator server")
        with self._lock():
            info = self.status()
            if info is None:
                raise EmulatorError(f"no emulator runs in {self.state_dir}; start it first")
            launch.restart(self.layout, info, server)
            return info

    def end_sessions(self, server: str, user: str) -> int:
        """End every session ``user`` has on ``server`` (``postgresql`` or ``mysql``) as its
        admin would (``pg_terminate_backend``, ``KILL CONNECTION``); returns how many.

        What the connections of a restored snapshot are: open on the client's side, gone
        on the server's. The server itself stays up (unlike :meth:`restart`).
        """
        self._require_root("ending sessions on an emulator server")
        info = self.status()
        if info is None:
            raise EmulatorError(f"no emulator runs in {self.state_dir}; start it first")
        running = info.servers[server]  # ServerNotRunningError if this emulator lacks it
        instance = launch.server_instance(
            self.layout, servers.find_binaries(), server, running.port, running.password or ""
        )
        if not isinstance(instance, servers.DatabaseServer):
            raise EmulatorError(f"{server} holds no sessions of its own; choose postgresql "
                                "or mysql")
        return instance.end_sessions(user)

    # -- identities and throttling on a running emulator ---------------------------------------

    def add_identity(self, identity: Identity) -> EmulatorInfo:
        """Add (or replace) an identity on the running emulator; the verifier picks it up."""
        return self._change(add=[identity])

    def retire_identity(self, name: str) -> EmulatorInfo:
        """Remove an identity from the running emulator: its tokens are refused from now on."""
        return self._change(retire=[name])

    def set_rate_limit(self, rate_limit: int | None) -> EmulatorInfo:
        """Throttle new IAM tokens to ``rate_limit`` per second per server (None or 0: off)."""
        return self._change(rate_limit=rate_limit or 0)

    def _change(
        self,
        *,
        add: Iterable[Identity] = (),
        retire: Iterable[str] = (),
        rate_limit: int | None = None,
    ) -> EmulatorInfo:
        self._require_root("changing the RDS IAM emulator")
        with self._lock():
            if self.status() is None:
                raise EmulatorError(f"no emulator runs in {self.state_dir}; start it first")
            return reconfigure(
                self.state, self.verifier, add=add, retire=retire, rate_limit=rate_limit
            )


    # -- sharing between processes ----------------------------------------------------------

    def _lease_dir(self) -> Path:
        return self.state_dir / "leases"

    def acquire(self) -> None:
        """Record that this process uses the emulator (see :meth:`release`)."""
        with self._lock():
            self._lease_dir().mkdir(exist_ok=True)
            (self._lease_dir() / str(os.getpid())).touch()

    def release(self, *, stop: bool) -> bool:
        """Drop this process's lease; with ``stop``, stop the emulator if nobody else uses it.

        Test sessions share one emulator: the session that started it stops it at its end
        only when no other live process holds a lease and no :meth:`start` caller (the CLI,
        a demo) asked to keep it. Returns whether it stopped the emulator.
        """
        with self._lock():
            lease_dir = self._lease_dir()
            (lease_dir / str(os.getpid())).unlink(missing_ok=True)
            others = [
                p.name
                for p in (lease_dir.iterdir() if lease_dir.is_dir() else [])
                if p.name.isdigit() and processes.process_alive(int(p.name))
            ]
            state = self.state.read() or {}
            if not stop or others or state.get("keep"):
                return False
            launch.teardown(self.layout)
            return True

    # -- stop -----------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the servers, remove the PAM files and the state dir; False if nothing to do."""
        if not self.state_dir.exists() and not self._own_pam_files():
            if self.link is not None and self.link.is_symlink():
                self.link.unlink()  # a link left dangling
            return False
        self._require_root("stopping the RDS IAM emulator")
        with self._lock():
            launch.teardown(self.layout)
        return True

    def _own_pam_files(self) -> list[str]:
        return [
            n
            for n in {*self.pam_services.values(), "pgbouncer"}
            if pam.owner_of(pam.PAM_DIR / n) == str(self.state_dir)
        ]


