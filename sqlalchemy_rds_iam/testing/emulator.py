"""Start, inspect and stop the local RDS IAM emulator.

The emulator is three real servers that accept only valid IAM tokens, the way RDS does:
PostgreSQL (PAM on ``hostssl`` lines), MariaDB (``auth_pam`` with ``mysql_clear_password``)
and PgBouncer in front of PostgreSQL (the stand-in for RDS Proxy). PAM hands each password
to :mod:`sqlalchemy_rds_iam.testing.verifier`, which recomputes the token's SigV4 signature
against a table of throwaway identities.

Everything lives under one state directory (default ``/tmp/sqlalchemy-rds-iam-emulator``,
or ``$SQLALCHEMY_RDS_IAM_EMULATOR_DIR``), plus one ``/etc/pam.d`` file per server. ``start``
is idempotent: a live emulator is reused, a stale one (crashed run) is cleaned up and started
afresh. ``stop`` ends the servers, removes the PAM files (restoring any file they replaced)
and deletes the state directory. Root is required: only root writes ``/etc/pam.d``.

    >>> from sqlalchemy_rds_iam.testing import Emulator
    >>> info = Emulator().start()
    >>> info.postgresql.url("iamuser")
    'postgresql+psycopg2://iamuser@localhost:41234/app?plugin=rds_iam&aws_region=...'
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import string
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy_rds_iam.testing import pam, servers
from sqlalchemy_rds_iam.testing.errors import EmulatorError, EmulatorNeedsRootError
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity, ServerInfo

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_STATE_DIR",
    "STATE_DIR_ENV",
    "Emulator",
    "default_state_dir",
]

DEFAULT_STATE_DIR = Path("/tmp/sqlalchemy-rds-iam-emulator")  # noqa: S108 -- private, 0755 root
STATE_DIR_ENV = "SQLALCHEMY_RDS_IAM_EMULATOR_DIR"
DEFAULT_REGION = "us-east-1"
HOST = "localhost"
_STATE_FILE = "state.json"
_STATE_VERSION = 1
# Processes the emulator runs, by argv[0] basename, and the signal for a fast clean shutdown.
_PROCESS_NAMES = {
    "postgresql": ("postgres",),
    "mysql": ("mariadbd", "mysqld"),
    "pgbouncer": ("pgbouncer",),
}
_STOP_SIGNAL = {"postgresql": signal.SIGINT, "mysql": signal.SIGTERM, "pgbouncer": signal.SIGTERM}
_ALL_NAMES = ("postgres", "mariadbd", "mysqld", "pgbouncer")


def default_state_dir() -> Path:
    """``$SQLALCHEMY_RDS_IAM_EMULATOR_DIR`` if set, else ``/tmp/sqlalchemy-rds-iam-emulator``."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def _key_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _secret(length: int = 40) -> str:
    return base64.b64encode(secrets.token_bytes(length)).decode()[:length]


def make_identities() -> dict[str, Identity]:
    """Fresh throwaway identities: long-term, temporary (short session token), restricted.

    The session token is short on purpose: pam_exec truncates passwords at 511 characters
    (see the verifier), and it contains ``+``, ``/`` and ``=`` as real ones do, so that URL
    encoding is exercised.
    """
    session = "FQoGZXIvYXdzE" + _secret(24) + "+/="
    return {
        "primary": Identity("primary", _key_id("AKIA"), _secret()),
        "temporary": Identity("temporary", _key_id("ASIA"), _secret(), session),
        "restricted": Identity(
            "restricted", _key_id("AKIA"), _secret(), allowed_users=(servers.IAM_USERS[1],)
        ),
    }


class Emulator:
    """The emulator rooted at one state directory; cheap to create, does nothing until asked."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        region: str = DEFAULT_REGION,
        pgbouncer: bool = True,
    ) -> None:
        """``pgbouncer=False`` leaves out PgBouncer, whose PAM file one emulator at a time owns."""
        path = Path(state_dir) if state_dir is not None else default_state_dir()
        self.state_dir = path.absolute()
        self.region = region
        tag = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:8]
        self.pam_services = {
            "postgresql": f"sqlalchemy-rds-iam-{tag}-postgresql",
            "mysql": f"sqlalchemy-rds-iam-{tag}-mysql",
        }
        if pgbouncer:
            # PgBouncer's PAM service name is compiled in: one emulator at a time can have it.
            self.pam_services["pgbouncer"] = "pgbouncer"

    @property
    def state_file(self) -> Path:
        return self.state_dir / _STATE_FILE

    @property
    def _backup_dir(self) -> Path:
        return self.state_dir / "pam-backup"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # One lock for all emulators on the machine: they share /etc/pam.d/pgbouncer, and a
        # start or stop takes seconds. Not in the state dir, which start/stop create/delete.
        lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
        with open(lock_dir / "sqlalchemy-rds-iam-emulator.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- inspection -----------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        except PermissionError as exc:
            raise EmulatorNeedsRootError(
                f"cannot read {self.state_file}: the emulator's state is root's (it holds "
                "the throwaway secret keys); run as root"
            ) from exc
        except (OSError, ValueError):
            return None
        return state if state.get("version") == _STATE_VERSION else None

    def _alive(self, state: dict[str, Any]) -> bool:
        pids: dict[str, int] = state.get("pids", {})
        if "info" not in state or set(pids) != set(state["info"]["servers"]):
            return False
        if not all(servers.process_alive(pid, _PROCESS_NAMES[n]) for n, pid in pids.items()):
            return False
        return all(
            pam.owner_of(pam.PAM_DIR / server["pam_service"]) == str(self.state_dir)
            for server in state["info"]["servers"].values()
        )

    def status(self) -> EmulatorInfo | None:
        """The running emulator's info, or None when it is not (fully) running."""
        state = self._read_state()
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
        if os.geteuid() != 0:
            raise EmulatorNeedsRootError(
                "the RDS IAM emulator needs root: it writes PAM services to /etc/pam.d and "
                "runs the servers as their own system users (postgres, mysql); run it as root "
                "(e.g. with sudo)"
            )
        with self._lock():
            info = self.status()
            started = info is None
            if info is None:
                self._check_pam_conflicts()
                self._cleanup()
                try:
                    info = self._start(binaries)
                except BaseException:
                    self._cleanup()
                    raise
            if keep:
                state = self._read_state()
                if state is not None and not state.get("keep"):
                    state["keep"] = True
                    self._write_state(state)
            return info, started

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
                if p.name.isdigit() and servers.process_alive(int(p.name))
            ]
            state = self._read_state() or {}
            if not stop or others or state.get("keep"):
                return False
            self._cleanup()
            return True

    def _check_pam_conflicts(self) -> None:
        for name in self.pam_services.values():
            owner = pam.owner_of(pam.PAM_DIR / name)
            if owner is not None and owner != str(self.state_dir):
                if Emulator(owner).status() is not None:
                    raise EmulatorError(
                        f"{pam.PAM_DIR / name} belongs to the emulator running in {owner}; "
                        "stop it first (sqlalchemy-rds-iam emulator stop --state-dir "
                        f"{owner}) or start this one without PgBouncer"
                    )

    def _start(self, binaries: servers.Binaries) -> EmulatorInfo:
        from sqlalchemy_rds_iam.testing.certs import make_tls_files

        state_dir = self.state_dir
        state_dir.mkdir(parents=True, mode=0o755)
        state_dir.chmod(0o755)  # the servers' users must traverse it
        state: dict[str, Any] = {"version": _STATE_VERSION, "pids": {}, "started": time.time()}
        self._write_state(state)
        tls = make_tls_files(state_dir / "tls")

        # The verifier runs as the server users under /usr/bin/python3: copy it where they
        # can read it (site-packages may sit under a 0700 home) and root alone can change it.
        verifier = state_dir / "verifier.py"
        shutil.copyfile(Path(__file__).with_name("verifier.py"), verifier)
        verifier.chmod(0o644)

        identities = make_identities()
        ports: dict[str, int] = {}
        for name in self.pam_services:
            port = servers.free_port()
            while port in ports.values():
                port = servers.free_port()
            ports[name] = port

        pg = servers.PostgresServer(
            state_dir / "postgresql", ports["postgresql"], self.pam_services["postgresql"], binaries
        )
        my = servers.MariaDbServer(
            state_dir / "mariadb", ports["mysql"], self.pam_services["mysql"], binaries
        )
        bouncer = (
            servers.PgBouncerServer(state_dir / "pgbouncer", ports["pgbouncer"], pg, binaries)
            if "pgbouncer" in ports
            else None
        )
        roots = {"postgresql": pg.root, "mysql": my.root}
        users = {"postgresql": pg.user, "mysql": my.user}
        if bouncer is not None:
            roots["pgbouncer"], users["pgbouncer"] = bouncer.root, bouncer.user

        server_infos: dict[str, ServerInfo] = {}
        for name, root in roots.items():
            servers.make_dir(root, users[name], 0o755)
            log = servers.write_file(root / "verifier.log", "", users[name], 0o644)
            config = self._verifier_config(name, ports[name], identities, log)
            config_path = servers.write_file(
                root / "verifier.json", json.dumps(config, indent=2), users[name], 0o600
            )
            pam.install(
                self.pam_services[name],
                pam.service_text(state_dir, verifier, config_path, name),
                state_dir,
                self._backup_dir,
            )
            server_infos[name] = ServerInfo(
                name=name,
                dialect="mysql" if name == "mysql" else "postgresql",
                host=HOST,
                port=ports[name],
                database=servers.DATABASE,
                users=servers.IAM_USERS,
                ca_path=str(tls.ca_cert),
                region=self.region,
                pam_service=self.pam_services[name],
                verifier_log=str(log),
            )

        # PostgreSQL and MariaDB initialise in parallel: most of start's time is theirs.
        with ThreadPoolExecutor(max_workers=2) as pool:
            pg_future = pool.submit(pg.start, tls.server_cert, tls.server_key)
            my_future = pool.submit(my.start, tls.server_cert, tls.server_key, tls.ca_cert)
            try:
                state["pids"]["postgresql"] = pg_future.result()
            finally:
                # Record what did start even if the other failed, for the cleanup.
                state["pids"]["mysql"] = my_future.result()
                self._write_state(state)
        if bouncer is not None:
            state["pids"]["pgbouncer"] = bouncer.start(tls.server_cert, tls.server_key, tls.ca_cert)

        info = EmulatorInfo(
            state_dir=str(state_dir),
            region=self.region,
            ca_path=str(tls.ca_cert),
            identities=identities,
            servers=server_infos,
        )
        state["info"] = info.to_dict()
        state["ready"] = time.time()
        self._write_state(state)
        return info

    def _verifier_config(
        self, name: str, port: int, identities: dict[str, Identity], log: Path
    ) -> dict[str, Any]:
        return {
            "region": self.region,
            "credentials": [
                {
                    "name": i.name,
                    "access_key_id": i.access_key_id,
                    "secret_access_key": i.secret_access_key,
                    "session_token": i.session_token,
                }
                for i in identities.values()
            ],
            "policy": {i.name: list(i.allowed_users) for i in identities.values()},
            "services": {
                name: {
                    # What a client may sign for: the name the certificate carries.
                    "endpoints": [f"{HOST}:{port}", f"127.0.0.1:{port}"],
                    "log": str(log),
                }
            },
        }

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        # 0600: the state holds the (throwaway) secret keys.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
        os.replace(tmp, self.state_file)

    # -- stop -----------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the servers, remove the PAM files and the state dir; False if nothing to do."""
        if not self.state_dir.exists() and not self._own_pam_files():
            return False
        if os.geteuid() != 0:
            raise EmulatorNeedsRootError(
                "stopping the RDS IAM emulator needs root: it removes files from /etc/pam.d "
                "and ends processes of the postgres and mysql users"
            )
        with self._lock():
            self._cleanup()
        return True

    def _own_pam_files(self) -> list[str]:
        return [
            n
            for n in {*self.pam_services.values(), "pgbouncer"}
            if pam.owner_of(pam.PAM_DIR / n) == str(self.state_dir)
        ]

    def _cleanup(self) -> None:
        """End everything this state dir ran, recorded or not, and remove its traces."""
        state = self._read_state() or {}
        recorded: dict[str, int] = state.get("pids", {})
        # PgBouncer first: it holds connections to PostgreSQL.
        for name in ("pgbouncer", "mysql", "postgresql"):
            pid = recorded.get(name)
            if pid is not None and servers.process_alive(pid, _PROCESS_NAMES[name]):
                servers.terminate(pid, _STOP_SIGNAL[name])
        # A run that crashed before recording its pids: find servers by their paths.
        if self.state_dir.exists():
            for pid in servers.processes_under(self.state_dir, _ALL_NAMES):
                servers.terminate(pid, signal.SIGINT if _is_postgres(pid) else signal.SIGTERM)
        # Every name this state dir may have used, whatever this instance was created with.
        for name in {*self.pam_services.values(), "pgbouncer"}:
            pam.remove(name, self.state_dir, self._backup_dir)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)


def _is_postgres(pid: int) -> bool:
    return servers.process_alive(pid, ("postgres",))
