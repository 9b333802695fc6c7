"""The emulator's private PostgreSQL, MariaDB and PgBouncer: how each is set up and started.

Each server gets its own directory under the state dir, its own free port on 127.0.0.1 and
its own unix socket, and runs as the unprivileged user its Debian package created
(``postgres``, ``mysql``); the machine's own services are never touched. The generic work
(running as a user, starting detached, waiting, stopping) lives in
:mod:`~sqlalchemy_rds_iam.testing.processes`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sqlalchemy_rds_iam.testing.certs import TlsFiles
from sqlalchemy_rds_iam.testing.errors import EmulatorError, ServerBinariesMissingError
from sqlalchemy_rds_iam.testing.processes import (
    ENV_PATH,
    child_env,
    chown,
    make_dir,
    port_open,
    run_as,
    spawn_detached,
    user_ids,
    wait_until,
    write_file,
)

__all__ = [
    "Binaries",
    "DatabaseServer",
    "MariaDbServer",
    "PgBouncerServer",
    "PostgresServer",
    "Server",
    "find_binaries",
]

IAM_USERS = ("iamuser", "iamuser2")
#: A user outside ``rds_iam`` that logs in with a password (SCRAM on PostgreSQL), as on RDS.
PASSWORD_USER = "pwuser"  # noqa: S105 -- a user name; its password is random
DATABASE = "app"
SERVER_NAMES = ("postgresql", "mysql", "pgbouncer")
#: Passwords this long arrive cut: PgBouncer copies at most MAX_PASSWORD - 1 = 2047 bytes
#: (1.18; compiled in). PostgreSQL and MariaDB pass tokens of 64 KB whole.
MAX_PASSWORD = {"pgbouncer": 2047}
_PLUGIN_DIR = Path("/usr/lib/mysql/plugin")
#: The Debian packages that provide each server, for messages about a missing one.
DEBIAN_PACKAGES = {
    "postgresql": "postgresql postgresql-client",
    "mysql": "mariadb-server mariadb-client",
    "pgbouncer": "pgbouncer",
    "pam": "gcc libpam0g-dev",
}


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the programs the emulator runs; empty where not installed."""

    pg_bin: Path | None
    mariadbd: str
    mariadb_install_db: str
    mariadb_client: str
    pgbouncer: str
    mariadb_pam_plugin: str
    #: Server name to what is missing for it, e.g. ``{"pgbouncer": "pgbouncer"}``.
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def available(self) -> tuple[str, ...]:
        """The servers this machine can run, in start order."""
        return tuple(n for n in SERVER_NAMES if n not in self.missing)

    def require(self, names: Sequence[str]) -> None:
        """Raise :class:`ServerBinariesMissingError` if any of ``names`` cannot run."""
        gaps = [f"{n}: {self.missing[n]}" for n in names if n in self.missing]
        if gaps:
            packages = " ".join(
                DEBIAN_PACKAGES[n] for n in dict.fromkeys(names) if n in self.missing
            )
            raise ServerBinariesMissingError(gaps, packages)


def _which(*names: str) -> str:
    for name in names:
        found = shutil.which(name, path=ENV_PATH)
        if found:
            return found
    return ""


def find_binaries() -> Binaries:
    """Locate the server programs; what is missing is listed per server, not raised."""
    missing: dict[str, str] = {}
    pg_bins = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    override = os.environ.get("SQLALCHEMY_RDS_IAM_PG_BIN")
    pg_bin = Path(override) if override else (Path(pg_bins[-1]).parent if pg_bins else None)
    if pg_bin is None or not all((pg_bin / p).exists() for p in ("initdb", "pg_ctl", "psql")):
        missing["postgresql"] = "PostgreSQL server (initdb, pg_ctl, psql)"
        pg_bin = None
    mariadbd = _which("mariadbd", "mysqld")
    install_db = _which("mariadb-install-db", "mysql_install_db")
    client = _which("mariadb", "mysql")
    # auth_pam (v2) needs its setuid helper; where the package lacks it, v1 runs PAM inside
    # mariadbd, which is enough: the PAM module only talks to the verifier's socket.
    if (_PLUGIN_DIR / "auth_pam_tool_dir" / "auth_pam_tool").exists() and (
        _PLUGIN_DIR / "auth_pam.so"
    ).exists():
        plugin = "auth_pam"
    elif (_PLUGIN_DIR / "auth_pam_v1.so").exists():
        plugin = "auth_pam_v1"
    else:
        plugin = ""
    my_gaps = [
        what
        for what, found in (
            ("mariadbd", mariadbd),
            ("mariadb-install-db", install_db),
            ("mariadb client", client),
            (f"PAM plugin {_PLUGIN_DIR}/auth_pam*.so", plugin),
        )
        if not found
    ]
    if my_gaps:
        missing["mysql"] = "MariaDB (" + ", ".join(my_gaps) + ")"
    pgbouncer = _which("pgbouncer")
    if not pgbouncer:
        missing["pgbouncer"] = "pgbouncer"
    elif "postgresql" in missing:
        missing["pgbouncer"] = "PostgreSQL, which PgBouncer fronts"
    elif not (_which("unshare") and _which("setpriv")):
        missing["pgbouncer"] = "unshare and setpriv (util-linux), for PgBouncer's own /etc/pam.d"
    return Binaries(pg_bin, mariadbd, install_db, client, pgbouncer, plugin, missing)


def _pg_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _sql_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass
class Server:
    """What every emulated server has: a directory, a port, a system user, TLS files, a log.

    :meth:`start` returns the pid of the long-running process; the emulator records it
    before anything else can fail, and stops it with :attr:`stop_signal`.
    """

    name: ClassVar[str]
    #: argv[0] basenames of the server's main process, to tell it from a recycled pid.
    process_names: ClassVar[tuple[str, ...]]
    stop_signal: ClassVar[int] = signal.SIGTERM
    log_name: ClassVar[str]

    root: Path
    port: int
    bins: Binaries

    user: ClassVar[str] = "postgres"

    @property
    def log(self) -> Path:
        return self.root / self.log_name

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    def prepare(self, tls: TlsFiles) -> None:
        """Create the server's directory and its private copy of the TLS files."""
        make_dir(self.root, self.user, 0o755)
        make_dir(self.tls_dir, self.user, 0o700)
        for src, name, mode in (
            (tls.server_cert, "server.crt", 0o644),
            (tls.server_key, "server.key", 0o600),  # servers refuse a readable key
            (tls.ca_cert, "ca.pem", 0o644),
        ):
            shutil.copyfile(src, self.tls_dir / name)
            chown(self.tls_dir / name, self.user, mode)

    def start(self, tls: TlsFiles, record: Callable[[int], None]) -> None:
        """Set up and start the server; call ``record(pid)`` as soon as its process exists."""
        raise NotImplementedError

    def launch(self, record: Callable[[int], None]) -> None:
        """Start the already set-up server (its files, port, TLS and PAM as before).

        :meth:`start` ends with it; :meth:`Emulator.restart` calls it alone after the old
        process has exited, so a restarted server is the same server on the same port.
        """
        raise NotImplementedError


@dataclass
class DatabaseServer(Server):
    """A database with IAM users (PAM, via the emulator's module) and one password user."""

    pam_service: str = ""
    password: str = ""

    def setup_sql(self) -> str:
        """Statements that create the database, the IAM users and the password user."""
        raise NotImplementedError

    def end_sessions(self, user: str) -> int:
        """End every session of ``user`` as the server's admin would; returns how many."""
        raise NotImplementedError


@dataclass
class PostgresServer(DatabaseServer):
    """A private PostgreSQL cluster: IAM (PAM) for ``rds_iam`` members, SCRAM for the rest."""

    name: ClassVar[str] = "postgresql"
    process_names: ClassVar[tuple[str, ...]] = ("postgres",)
    stop_signal: ClassVar[int] = signal.SIGINT  # fast shutdown
    log_name: ClassVar[str] = "postgresql.log"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    def _psql(self, database: str, sql: str) -> None:
        assert self.bins.pg_bin is not None
        argv = [str(self.bins.pg_bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", database]
        run_as(self.user, argv, stdin=sql, cwd=self.root)

    def end_sessions(self, user: str) -> int:
        """``pg_terminate_backend`` (waiting up to 5 s for each to end) as ``postgres``."""
        assert self.bins.pg_bin is not None
        argv = [str(self.bins.pg_bin / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d",
                 "postgres"]
        sql = ("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "  # noqa: S608
               f"FROM pg_stat_activity WHERE usename = {_sql_quote(user)};\n")
        return int(run_as(self.user, argv, stdin=sql, cwd=self.root).strip() or 0)

    def start(self, tls: TlsFiles, record: Callable[[int], None]) -> None:
        """initdb, configure, start, then create roles and database."""
        assert self.bins.pg_bin is not None
        bin_ = self.bins.pg_bin
        make_dir(self.socket_dir, self.user, 0o700)
        initdb = [str(bin_ / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8"]
        run_as(self.user, [*initdb, "--no-locale", "--no-sync", "--auth=reject"], cwd=self.root)
        conf = f"""
# sqlalchemy-rds-iam emulator: private instance, never the system cluster.
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = {_pg_quote(str(self.socket_dir))}
ssl = on
ssl_cert_file = {_pg_quote(str(self.tls_dir / "server.crt"))}
ssl_key_file = {_pg_quote(str(self.tls_dir / "server.key"))}
password_encryption = 'scram-sha-256'
# a 200-connection burst directly, plus PgBouncer's pool (default_pool_size) at once
max_connections = 500
shared_buffers = 32MB
# Throwaway data: durability is not worth the time.
fsync = off
synchronous_commit = off
full_page_writes = off
log_connections = on
"""
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write(conf)
        # As on RDS: members of rds_iam log in with a token, everyone else with a password;
        # both only over TLS. The unix socket is in a directory only the server user enters.
        pam = f"pam pamservice={self.pam_service}"
        hba = f"""# sqlalchemy-rds-iam emulator: IAM for rds_iam members, SCRAM for others.
local     all all                     trust
hostssl   all +rds_iam 127.0.0.1/32   {pam}
hostssl   all +rds_iam ::1/128        {pam}
hostssl   all all      127.0.0.1/32   scram-sha-256
hostssl   all all      ::1/128        scram-sha-256
hostnossl all all      all            reject
"""
        (self.data / "pg_hba.conf").write_text(hba, encoding="utf-8")
        self.launch(record)
        self._psql("postgres", self.setup_sql())
        grants = "\n".join(
            f"GRANT ALL ON SCHEMA public TO {u};" for u in (*IAM_USERS, PASSWORD_USER)
        )
        self._psql(DATABASE, grants)

    def launch(self, record: Callable[[int], None]) -> None:
        """``pg_ctl start`` on the existing cluster; returns once it accepts connections."""
        assert self.bins.pg_bin is not None
        pg_ctl = [str(self.bins.pg_bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
        try:
            run_as(self.user, [*pg_ctl, "-w", "-t", "60", "start"], cwd=self.root, timeout=90)
        finally:
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():
                record(int(pid_file.read_text().split()[0]))

    def setup_sql(self) -> str:
        # "admin": the role an Aurora DSQL cluster logs in (the emulated DSQL endpoint).
        iam = "\n".join(
            f"CREATE ROLE {u} LOGIN; GRANT rds_iam TO {u};" for u in (*IAM_USERS, "admin")
        )
        return (
            f"CREATE ROLE rds_iam NOLOGIN;\n{iam}\n"
            f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD {_sql_quote(self.password)};\n"
            f"CREATE DATABASE {DATABASE} OWNER {IAM_USERS[0]};\n"
            + "".join(
                f"GRANT ALL ON DATABASE {DATABASE} TO {u};\n" for u in (*IAM_USERS, PASSWORD_USER)
            )
        )


@dataclass
class MariaDbServer(DatabaseServer):
    """A private MariaDB: ``auth_pam`` with the cleartext client plugin, as RDS MySQL asks."""

    name: ClassVar[str] = "mysql"
    process_names: ClassVar[tuple[str, ...]] = ("mariadbd", "mysqld")
    log_name: ClassVar[str] = "mariadb.log"
    user: ClassVar[str] = "mysql"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "mariadbd.sock"

    @property
    def defaults_file(self) -> Path:
        return self.root / "my.cnf"

    def _client(self, sql: str) -> str:
        # root@localhost authenticates by unix_socket: we are root, nobody else can.
        proc = subprocess.run(  # noqa: S603 -- fixed argv built by the emulator
            [
                self.bins.mariadb_client,
                "--no-defaults",
                "--protocol=socket",
                f"--socket={self.socket}",
                "-u",
                "root",
                "--batch",
                "--skip-column-names",
            ],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=child_env(self.root),
        )
        if proc.returncode != 0:
            raise EmulatorError(f"MariaDB setup failed: {proc.stderr.strip()}")
        return proc.stdout

    def _ready(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            self._client("SELECT 1;")
        except EmulatorError:
            return False
        return True

    def end_sessions(self, user: str) -> int:
        """``KILL CONNECTION`` for each of ``user``'s threads, as root (unix socket)."""
        ids = self._client(
            "SELECT id FROM information_schema.processlist "  # noqa: S608
            f"WHERE user = {_sql_quote(user)};\n"
        ).split()
        if ids:
            self._client("".join(f"KILL CONNECTION {int(i)};\n" for i in ids))
        return len(ids)

    def start(self, tls: TlsFiles, record: Callable[[int], None]) -> None:
        """Install the datadir, start mariadbd, create users and database."""
        make_dir(self.socket.parent, self.user, 0o755)
        cnf = f"""# sqlalchemy-rds-iam emulator: private instance, never the system server.
[mysqld]
datadir = {self.data}
socket = {self.socket}
pid-file = {self.root / "run" / "mariadbd.pid"}
port = {self.port}
bind-address = 127.0.0.1
skip-name-resolve
# Refuse plain TCP. Note that MariaDB still runs the auth plugin (PAM) before it rejects a
# plain connection, so a client that sends a token without TLS has already leaked it.
require-secure-transport = ON
log-error = {self.log}
ssl-cert = {self.tls_dir / "server.crt"}
ssl-key = {self.tls_dir / "server.key"}
ssl-ca = {self.tls_dir / "ca.pem"}
plugin-load-add = {self.bins.mariadb_pam_plugin}
pam-use-cleartext-plugin = ON
max-connections = 500
innodb-buffer-pool-size = 32M
innodb-log-file-size = 16M
innodb-flush-log-at-trx-commit = 0
skip-log-bin
# MySQL 8.0's default, which RDS for MySQL keeps: every character fits (emoji too).
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
"""
        write_file(self.defaults_file, cnf, "root", 0o644)
        run_as(
            self.user,
            [
                self.bins.mariadb_install_db,
                f"--defaults-file={self.defaults_file}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            cwd=self.root,
        )
        self.launch(record)
        self._client(self.setup_sql())

    def launch(self, record: Callable[[int], None]) -> None:
        """Start mariadbd on the existing datadir; returns once it answers."""
        pid = spawn_detached(
            self.user,
            [self.bins.mariadbd, f"--defaults-file={self.defaults_file}"],
            cwd=self.root,
            log=self.log,
        )
        record(pid)
        wait_until(self._ready, what="mariadbd", pid=pid, log=self.log, timeout=60)

    def setup_sql(self) -> str:
        iam = "\n".join(
            f"CREATE USER '{u}'@'%' IDENTIFIED VIA pam USING '{self.pam_service}' REQUIRE SSL;\n"
            f"GRANT ALL ON `{DATABASE}`.* TO '{u}'@'%';"
            for u in IAM_USERS
        )
        # Anonymous users would shadow user@'%' for local logins: drop them.
        return (
            "DELETE FROM mysql.global_priv WHERE User = '';\nFLUSH PRIVILEGES;\n"  # noqa: S608
            f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
            f"{iam}\n"
            f"CREATE USER '{PASSWORD_USER}'@'%' IDENTIFIED BY {_sql_quote(self.password)} "
            f"REQUIRE SSL;\nGRANT ALL ON `{DATABASE}`.* TO '{PASSWORD_USER}'@'%';\n"
        )


@dataclass
class PgBouncerServer(Server):
    """PgBouncer with PAM auth and client TLS in front of PostgreSQL: the RDS Proxy stand-in.

    PgBouncer's PAM service name is compiled in (``pgbouncer``), so it runs in a private
    mount namespace where ``pam_dir`` is bound over ``/etc/pam.d``: several emulators can
    run PgBouncer at once, and the machine's ``/etc/pam.d/pgbouncer`` is never touched.
    """

    name: ClassVar[str] = "pgbouncer"
    process_names: ClassVar[tuple[str, ...]] = ("pgbouncer",)
    log_name: ClassVar[str] = "pgbouncer.log"

    postgres: PostgresServer | None = None
    #: Directory holding this PgBouncer's ``pgbouncer`` PAM file.
    pam_dir: Path | None = None

    def start(self, tls: TlsFiles, record: Callable[[int], None]) -> None:
        """Write the config and start pgbouncer in its own mount namespace."""
        assert self.postgres is not None and self.pam_dir is not None
        backend = f"host={self.postgres.socket_dir} port={self.postgres.port}"
        ini = f"""\
; sqlalchemy-rds-iam emulator: IAM token to PgBouncer, trusted socket to PostgreSQL
[databases]
{DATABASE} = {backend} dbname={DATABASE}
* = {backend}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = pam
client_tls_sslmode = require
client_tls_cert_file = {self.tls_dir / "server.crt"}
client_tls_key_file = {self.tls_dir / "server.key"}
client_tls_ca_file = {self.tls_dir / "ca.pem"}
server_tls_sslmode = disable
pool_mode = session
max_client_conn = 500
; session mode: one PostgreSQL connection per client, so 200 concurrent clients fit
default_pool_size = 250
; the verifier's wake-up connections (see verifier.VerifierService._wake) are not news
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits,options,search_path
; no logfile: stderr already goes to {self.log_name} (both would log every line twice)
pidfile = {self.root / "pgbouncer.pid"}
"""
        write_file(self.ini, ini, self.user, 0o644)
        write_file(self.log, "", self.user, 0o644)
        self.launch(record)

    @property
    def ini(self) -> Path:
        return self.root / "pgbouncer.ini"

    def launch(self, record: Callable[[int], None]) -> None:
        """Start pgbouncer with its written config, in its own mount namespace."""
        assert self.pam_dir is not None
        uid, gid = user_ids(self.user)
        argv = [
            _which("unshare"),
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            'mount --bind "$0" /etc/pam.d && exec "$@"',
            str(self.pam_dir),
            _which("setpriv"),
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--",
            self.bins.pgbouncer,
            str(self.ini),
        ]
        pid = spawn_detached(None, argv, cwd=self.root, log=self.log)
        record(pid)
        wait_until(
            lambda: port_open(self.port), what="pgbouncer", pid=pid, log=self.log, timeout=30
        )
