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

import base64
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import string
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy_rds_iam.testing import pam, servers, wiring
from sqlalchemy_rds_iam.testing.errors import EmulatorError, EmulatorNeedsRootError
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity, ServerInfo
from sqlalchemy_rds_iam.testing.state import StateFile

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_STATE_DIR",
    "STATE_DIR_ENV",
    "Emulator",
    "default_state_dir",
    "make_identities",
]

DEFAULT_STATE_DIR = Path("/tmp/sqlalchemy-rds-iam-emulator")  # noqa: S108 -- private, 0755 root
STATE_DIR_ENV = "SQLALCHEMY_RDS_IAM_EMULATOR_DIR"
DEFAULT_REGION = "us-east-1"
HOST = "localhost"
#: Length of the ``temporary`` identity's session token: real STS tokens (Lambda's role
#: credentials, assumed roles, SSO) run to a thousand characters and more.
SESSION_TOKEN_LENGTH = 1200
_VERIFIER_NAMES = ("python*",)
_SERVER_NAMES = ("postgres", "mariadbd", "mysqld", "pgbouncer")
_SERVER_CLASSES: dict[str, type[servers.Server]] = {
    "postgresql": servers.PostgresServer,
    "mysql": servers.MariaDbServer,
    "pgbouncer": servers.PgBouncerServer,
}


def default_state_dir() -> Path:
    """``$SQLALCHEMY_RDS_IAM_EMULATOR_DIR`` if set, else ``/tmp/sqlalchemy-rds-iam-emulator``."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def _key_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _secret(length: int = 40) -> str:
    return base64.b64encode(secrets.token_bytes(length)).decode()[:length]


def session_token(length: int = SESSION_TOKEN_LENGTH) -> str:
    """A made-up STS session token of ``length`` characters, shaped like a real one.

    Base64 with ``+``, ``/`` and ``=``, as real ones are, so that URL encoding (which makes
    the token in the password longer still) is exercised.
    """
    prefix, suffix = "IQoJb3JpZ2luX2VjE", "+/="
    body = base64.b64encode(secrets.token_bytes(length)).decode()
    return prefix + body[: max(0, length - len(prefix) - len(suffix))] + suffix


def make_identities() -> dict[str, Identity]:
    """Fresh throwaway identities: long-term, temporary (real-size session token), restricted."""
    return {
        "primary": Identity("primary", _key_id("AKIA"), _secret()),
        "temporary": Identity("temporary", _key_id("ASIA"), _secret(), session_token()),
        "restricted": Identity(
            "restricted", _key_id("AKIA"), _secret(), allowed_users=(servers.IAM_USERS[1],)
        ),
    }


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
        self.state_dir = path.absolute()
        self.region = region
        unknown = set(servers or ()) - set(_SERVER_CLASSES)
        if unknown:
            raise EmulatorError(
                f"unknown server(s) {', '.join(sorted(unknown))}; choose among "
                + ", ".join(_SERVER_CLASSES)
            )
        self.requested = tuple(servers) if servers is not None else None
        self.with_pgbouncer = pgbouncer
        self.extra_identities = {i.name: i for i in identities}
        if rate_limit is not None and rate_limit < 0:
            raise EmulatorError("the IAM rate limit is a number of new tokens per second, >= 0")
        self.rate_limit = rate_limit
        tag = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:8]
        self.pam_services = {
            "postgresql": f"sqlalchemy-rds-iam-{tag}-postgresql",
            "mysql": f"sqlalchemy-rds-iam-{tag}-mysql",
            # Inside PgBouncer's own mount namespace: the name it has compiled in.
            "pgbouncer": "pgbouncer",
        }
        self.state = StateFile(self.state_dir)
        self.verifier = wiring.VerifierFiles(self.state_dir)

    @property
    def state_file(self) -> Path:
        return self.state.path

    @property
    def _backup_dir(self) -> Path:
        return self.state_dir / "pam-backup"

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
        if "info" not in state or set(pids) != {*state["info"]["servers"], "verifier"}:
            return False
        for name, pid in pids.items():
            names = _VERIFIER_NAMES if name == "verifier" else _SERVER_CLASSES[name].process_names
            if not servers.process_alive(pid, names):
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
        names = self._server_names(binaries)
        self._require_root("the RDS IAM emulator")
        with self._lock():
            info = self.status()
            started = info is None
            if info is None:
                self._refuse_foreign()
                self._cleanup()
                try:
                    info = self._start(binaries, names)
                except BaseException:
                    self._cleanup()
                    raise
            elif self.extra_identities or self.rate_limit is not None:
                info = self._reconfigure(
                    add=self.extra_identities.values(), rate_limit=self.rate_limit
                )
            if keep:
                state = self.state.read()
                if state is not None and not state.get("keep"):
                    state["keep"] = True
                    self.state.write(state)
            return info, started

    def _refuse_foreign(self) -> None:
        """Never clean up an emulator that another version of this package runs here."""
        alive = [pid for pid in self.state.foreign_pids() if servers.process_alive(pid)]
        if alive:
            raise EmulatorError(
                f"an emulator started by another version of sqlalchemy-rds-iam runs in "
                f"{self.state_dir} (pids {', '.join(map(str, alive))}); stop it with that "
                "version, or use another state directory (--state-dir, "
                f"${STATE_DIR_ENV}, --rds-iam-emulator-dir)"
            )

    def _server_names(self, binaries: servers.Binaries) -> dict[str, str | None]:
        """Each server to run (None) or skip (the reason); raise if a requested one can't run."""
        if self.requested is not None:
            binaries.require(self.requested)
            wanted = [n for n in servers.SERVER_NAMES if n in self.requested]
        else:
            wanted = list(binaries.available)
            if not wanted:
                binaries.require(servers.SERVER_NAMES[:2])
        if not self.with_pgbouncer and "pgbouncer" in wanted:
            wanted.remove("pgbouncer")
        if "pgbouncer" in wanted and "postgresql" not in wanted:
            raise EmulatorError("PgBouncer fronts PostgreSQL: run postgresql too")
        result: dict[str, str | None] = {}
        for name in servers.SERVER_NAMES:
            if name in wanted:
                result[name] = None
            elif name in binaries.missing:
                package = servers.DEBIAN_PACKAGES[name]
                result[name] = f"not installed: {binaries.missing[name]} (Debian: {package})"
            else:
                result[name] = "left out (servers=)"
        return result

    def _start(self, binaries: servers.Binaries, names: dict[str, str | None]) -> EmulatorInfo:
        from sqlalchemy_rds_iam.testing.certs import make_tls_files

        state_dir = self.state_dir
        state_dir.mkdir(parents=True, mode=0o755)
        state_dir.chmod(0o755)  # the servers' users must traverse it
        self.state.begin()
        module = wiring.build_pam_module()
        tls = make_tls_files(state_dir / "tls")
        identities = {**make_identities(), **self.extra_identities}
        running = [n for n, why in names.items() if why is None]
        ports: dict[str, int] = {}
        for name in running:
            port = servers.free_port()
            while port in ports.values():
                port = servers.free_port()
            ports[name] = port
        passwords = {n: secrets.token_hex(16) for n in ("postgresql", "mysql")}

        instances = self._instances(binaries, running, ports, passwords)
        self.verifier.dir.mkdir(mode=0o755)
        services: dict[str, dict[str, Any]] = {}
        for name, server in instances.items():
            log = self.verifier.dir / f"{name}.log"
            servers.write_file(log, "", "root", 0o644)
            uid, _ = servers.user_ids(server.user)
            services[name] = {
                # What a client may sign for: the name the certificate carries.
                "endpoints": [f"{HOST}:{ports[name]}", f"127.0.0.1:{ports[name]}"],
                "log": str(log),
                "socket": str(self.verifier.socket(name)),
                "owner": uid,
                "wake_port": ports[name] if name == "pgbouncer" else None,
                "max_password": servers.MAX_PASSWORD.get(name),
            }
        wiring.write_verifier_config(
            self.verifier,
            region=self.region,
            identities=identities,
            rate_limit=self.rate_limit or None,
            services=services,
        )
        self.state.record_pid("verifier", wiring.start_verifier(self.verifier))
        for name, server in instances.items():
            stack = wiring.pam_stack(module, self.verifier.socket(name))
            if isinstance(server, servers.PgBouncerServer):
                assert server.pam_dir is not None
                servers.make_dir(server.pam_dir, "root", 0o755)
                servers.write_file(server.pam_dir / "pgbouncer", stack, "root", 0o644)
            else:
                text = pam.service_text(state_dir, stack)
                pam.install(self.pam_services[name], text, state_dir, self._backup_dir)
            server.prepare(tls)

        self._start_servers(instances, tls)
        server_infos = {
            name: ServerInfo(
                name=name,
                dialect="mysql" if name == "mysql" else "postgresql",
                host=HOST,
                port=ports[name],
                database=servers.DATABASE,
                users=servers.IAM_USERS,
                ca_path=str(tls.ca_cert),
                region=self.region,
                pam_service=self.pam_services[name],
                verifier_log=services[name]["log"],
                password_user=servers.PASSWORD_USER if name in passwords else None,
                password=passwords.get(name),
            )
            for name in instances
        }
        info = EmulatorInfo(
            state_dir=str(state_dir),
            region=self.region,
            ca_path=str(tls.ca_cert),
            identities=identities,
            servers=server_infos,
            skipped={n: why for n, why in names.items() if why is not None},
            rate_limit=self.rate_limit or None,
        )
        self.state.finish(info.to_dict())
        return info

    def _instances(
        self,
        binaries: servers.Binaries,
        running: list[str],
        ports: dict[str, int],
        passwords: dict[str, str],
    ) -> dict[str, servers.Server]:
        instances: dict[str, servers.Server] = {}
        roots = {"postgresql": "postgresql", "mysql": "mariadb", "pgbouncer": "pgbouncer"}
        for name in running:
            root = self.state_dir / roots[name]
            if name == "pgbouncer":
                pg = instances["postgresql"]
                assert isinstance(pg, servers.PostgresServer)
                instances[name] = servers.PgBouncerServer(
                    root, ports[name], binaries, postgres=pg, pam_dir=root / "pam.d"
                )
            else:
                cls = _SERVER_CLASSES[name]
                assert issubclass(cls, servers.DatabaseServer)
                instances[name] = cls(
                    root,
                    ports[name],
                    binaries,
                    pam_service=self.pam_services[name],
                    password=passwords[name],
                )
        return instances

    def _start_servers(self, instances: dict[str, servers.Server], tls: Any) -> None:
        """Start the databases in parallel, then PgBouncer; report every failure, not one.

        Each server records its pid the moment its process exists, so a failure anywhere
        leaves nothing unrecorded for the cleanup.
        """

        def recorder(name: str) -> Callable[[int], None]:
            return lambda pid: self.state.record_pid(name, pid)

        errors: dict[str, BaseException] = {}
        databases = [n for n in instances if n != "pgbouncer"]
        with ThreadPoolExecutor(max_workers=max(1, len(databases))) as pool:
            futures = {n: pool.submit(instances[n].start, tls, recorder(n)) for n in databases}
            for name, future in futures.items():
                exc = future.exception()
                if exc is not None:
                    errors[name] = exc
        if "pgbouncer" in instances:
            if "postgresql" in errors:
                errors["pgbouncer"] = EmulatorError("not started: PostgreSQL failed")
            else:
                try:
                    instances["pgbouncer"].start(tls, recorder("pgbouncer"))
                except Exception as exc:
                    errors["pgbouncer"] = exc
        if errors:
            first = next(iter(errors.values()))
            if len(errors) == 1 and isinstance(first, EmulatorError):
                raise first
            report = "\n".join(f"{name}: {type(e).__name__}: {e}" for name, e in errors.items())
            raise EmulatorError(f"the emulator could not start:\n{report}") from first

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
            return self._reconfigure(add=add, retire=retire, rate_limit=rate_limit)

    def _reconfigure(
        self,
        *,
        add: Iterable[Identity] = (),
        retire: Iterable[str] = (),
        rate_limit: int | None = None,
    ) -> EmulatorInfo:
        """Rewrite the verifier's config and the state (lock held, emulator running)."""
        state = self.state.read()
        assert state is not None
        info = EmulatorInfo.from_dict(state["info"])
        identities = dict(info.identities)
        for name in retire:
            if name not in identities:
                raise EmulatorError(
                    f"no identity {name!r}; the emulator has {', '.join(identities)}"
                )
            del identities[name]
        identities.update((i.name, i) for i in add)
        limit = info.rate_limit if rate_limit is None else (rate_limit or None)
        config = wiring.read_verifier_config(self.verifier)
        wiring.write_verifier_config(
            self.verifier,
            region=info.region,
            identities=identities,
            rate_limit=limit,
            services=config["services"],
        )
        data = info.to_dict()
        data["identities"] = {
            n: {**i, "allowed_users": list(i["allowed_users"])}
            for n, i in EmulatorInfo(
                info.state_dir, info.region, info.ca_path, identities=identities
            ).to_dict()["identities"].items()
        }
        data["rate_limit"] = limit
        state["info"] = data
        self.state.write(state)
        return EmulatorInfo.from_dict(data)

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
            state = self.state.read() or {}
            if not stop or others or state.get("keep"):
                return False
            self._cleanup()
            return True

    # -- stop -----------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the servers, remove the PAM files and the state dir; False if nothing to do."""
        if not self.state_dir.exists() and not self._own_pam_files():
            return False
        self._require_root("stopping the RDS IAM emulator")
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
        state = self.state.read() or {}
        recorded: dict[str, int] = state.get("pids", {})
        # PgBouncer first: it holds connections to PostgreSQL. The verifier last.
        for name in ("pgbouncer", "mysql", "postgresql", "verifier"):
            pid = recorded.get(name)
            names: tuple[str, ...]
            sig: int
            if name == "verifier":
                names, sig = _VERIFIER_NAMES, signal.SIGTERM
            else:
                cls = _SERVER_CLASSES[name]
                names, sig = cls.process_names, cls.stop_signal
            if pid is not None and servers.process_alive(pid, names):
                servers.terminate(pid, sig)
        # A run that crashed before recording its pids: find processes by their paths.
        if self.state_dir.exists():
            for pid in servers.processes_under(self.state_dir, _SERVER_NAMES):
                servers.terminate(pid, signal.SIGINT if _is_postgres(pid) else signal.SIGTERM)
            script = str(self.verifier.script)
            for pid in servers.processes_under(self.state_dir, _VERIFIER_NAMES, arg=script):
                servers.terminate(pid)
        # Every name this state dir may have used (an older version wrote pgbouncer's too).
        for name in {*self.pam_services.values(), "pgbouncer"}:
            pam.remove(name, self.state_dir, self._backup_dir)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)


def _is_postgres(pid: int) -> bool:
    return servers.process_alive(pid, ("postgres",))
