"""Start the emulator's private PostgreSQL, MariaDB and PgBouncer processes.

Each server gets its own directory under the state dir, its own free port on 127.0.0.1 and
its own unix socket, and runs as the unprivileged user its Debian package created
(``postgres``, ``mysql``); the machine's own services are never touched. Servers are
detached from the caller (new session, reparented to init) so that ``emulator start`` can
exit and a later ``emulator stop`` can end them by pid.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy_rds_iam.testing.errors import EmulatorError, ServerBinariesMissingError

__all__ = [
    "Binaries",
    "MariaDbServer",
    "PgBouncerServer",
    "PostgresServer",
    "find_binaries",
    "free_port",
    "process_alive",
    "terminate",
]

IAM_USERS = ("iamuser", "iamuser2")
DATABASE = "app"
_ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PLUGIN_DIR = Path("/usr/lib/mysql/plugin")


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the programs the emulator runs."""

    pg_bin: Path
    mariadbd: str
    mariadb_install_db: str
    mariadb_client: str
    pgbouncer: str
    mariadb_pam_plugin: str

    @property
    def pg_version(self) -> str:
        """The PostgreSQL major version, from ``/usr/lib/postgresql/<version>/bin``."""
        return self.pg_bin.parent.name


def find_binaries() -> Binaries:
    """Locate the server programs; raise :class:`ServerBinariesMissingError` naming the gaps."""
    missing: list[str] = []
    pg_bins = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    override = os.environ.get("SQLALCHEMY_RDS_IAM_PG_BIN")
    pg_bin = Path(override) if override else (Path(pg_bins[-1]).parent if pg_bins else None)
    if pg_bin is None or not all((pg_bin / p).exists() for p in ("initdb", "pg_ctl", "psql")):
        missing.append("PostgreSQL server (initdb, pg_ctl, psql)")

    def which(*names: str) -> str:
        for name in names:
            found = shutil.which(name, path=_ENV_PATH)
            if found:
                return found
        missing.append(names[0])
        return ""

    mariadbd = which("mariadbd", "mysqld")
    install_db = which("mariadb-install-db", "mysql_install_db")
    client = which("mariadb", "mysql")
    pgbouncer = which("pgbouncer")
    if not os.path.exists("/usr/bin/python3"):
        missing.append("/usr/bin/python3")
    if not glob.glob("/usr/lib/*/security/pam_exec.so") + glob.glob("/lib/*/security/pam_exec.so"):
        missing.append("pam_exec.so (libpam-modules)")
    # auth_pam (v2) needs its setuid helper; where the package lacks it, v1 runs PAM inside
    # mariadbd, which is enough for pam_exec (it runs as the server user either way).
    if (_PLUGIN_DIR / "auth_pam_tool_dir" / "auth_pam_tool").exists() and (
        _PLUGIN_DIR / "auth_pam.so"
    ).exists():
        plugin = "auth_pam"
    elif (_PLUGIN_DIR / "auth_pam_v1.so").exists():
        plugin = "auth_pam_v1"
    else:
        plugin = ""
        if mariadbd:
            missing.append(f"MariaDB PAM plugin ({_PLUGIN_DIR}/auth_pam*.so)")
    if missing or pg_bin is None:
        raise ServerBinariesMissingError(missing)
    return Binaries(pg_bin, mariadbd, install_db, client, pgbouncer, plugin)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _user_ids(user: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise EmulatorError(
            f"system user {user!r} does not exist: is its server package installed?"
        ) from exc
    return entry.pw_uid, entry.pw_gid


def chown(path: Path, user: str, mode: int | None = None) -> None:
    """Give ``path`` to ``user`` (and optionally set its mode)."""
    uid, gid = _user_ids(user)
    os.chown(path, uid, gid)
    if mode is not None:
        path.chmod(mode)


def make_dir(path: Path, user: str, mode: int) -> Path:
    """Create ``path`` owned by ``user`` with ``mode``."""
    path.mkdir(parents=True, exist_ok=True)
    chown(path, user, mode)
    return path


def write_file(path: Path, text: str, user: str, mode: int) -> Path:
    """Write ``path`` with ``mode`` from creation on, then give it to ``user``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    chown(path, user, mode)
    return path


def _env(home: Path) -> dict[str, str]:
    return {"PATH": _ENV_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(home)}


def run_as(
    user: str,
    argv: Sequence[str],
    *,
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 120,
) -> str:
    """Run a setup command as ``user``; raise :class:`EmulatorError` with its output on failure."""
    uid, gid = _user_ids(user)
    try:
        proc = subprocess.run(  # noqa: S603 -- fixed argv built by the emulator
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=_env(cwd),
            user=uid,
            group=gid,
            extra_groups=[],
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EmulatorError(f"{argv[0]} timed out after {timeout} s") from exc
    if proc.returncode != 0:
        raise EmulatorError(
            f"{' '.join(argv[:2])} failed with exit status {proc.returncode}:\n"
            f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
        )
    return proc.stdout


def spawn_detached(user: str, argv: Sequence[str], *, cwd: Path, log: Path) -> int:
    """Start a long-running server as ``user``, detached from us; return its pid.

    ``sh`` backgrounds the server and exits, so the server is reparented to init: it outlives
    the caller and never becomes the caller's zombie when it is stopped.
    """
    uid, gid = _user_ids(user)
    env = _env(cwd)
    env["EMULATOR_LOG"] = str(log)
    proc = subprocess.run(  # noqa: S603 -- fixed argv built by the emulator
        ["/bin/sh", "-c", '"$@" >>"$EMULATOR_LOG" 2>&1 </dev/null & echo $!', "sh", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        user=uid,
        group=gid,
        extra_groups=[],
        start_new_session=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        raise EmulatorError(f"could not start {argv[0]}: {proc.stderr.strip()}")
    return int(proc.stdout.strip())


def process_alive(pid: int, names: Sequence[str] = ()) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if ``names`` are given, is one of them."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = fh.read()
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv0 = fh.read().split(b"\0", 1)[0].decode("utf-8", "replace")
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:
        return False
    return not names or os.path.basename(argv0) in names


def processes_under(directory: Path, names: Sequence[str]) -> list[int]:
    """Pids of ``names`` processes whose command line mentions ``directory``.

    Used to clean up after a run that crashed before it recorded its pids.
    """
    needle = str(directory).rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) in names and any(needle in a for a in argv[1:]):
            found.append(int(entry))
    return found


def terminate(pid: int, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal ``pid`` and wait for it to exit; SIGKILL it if it does not in time."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while process_alive(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    check: Callable[[], bool], *, what: str, pid: int, log: Path, timeout: float
) -> None:
    """Poll ``check`` until true; fail early with the log's tail if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if not process_alive(pid):
            raise EmulatorError(f"{what} exited during startup; log {log}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise EmulatorError(f"{what} not ready after {timeout} s; log {log}:\n{_tail(log)}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _pg_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster: PAM on ``hostssl`` lines, trust on its private socket."""

    root: Path
    port: int
    pam_service: str
    bins: Binaries
    user: str = "postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "postgresql.log"

    def start(self, cert: Path, key: Path) -> int:
        """initdb, configure, start and create the IAM roles and database; return the pid."""
        make_dir(self.root, self.user, 0o755)
        make_dir(self.socket_dir, self.user, 0o700)
        tls_dir = make_dir(self.root / "tls", self.user, 0o700)
        shutil.copyfile(cert, tls_dir / "server.crt")
        shutil.copyfile(key, tls_dir / "server.key")
        chown(tls_dir / "server.crt", self.user, 0o644)
        chown(tls_dir / "server.key", self.user, 0o600)  # PostgreSQL refuses a readable key
        bin_ = self.bins.pg_bin
        run_as(
            self.user,
            [
                str(bin_ / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--auth=reject",
            ],
            cwd=self.root,
        )
        conf = f"""
# sqlalchemy-rds-iam emulator: private instance, never the system cluster.
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = {_pg_quote(str(self.socket_dir))}
ssl = on
ssl_cert_file = {_pg_quote(str(tls_dir / "server.crt"))}
ssl_key_file = {_pg_quote(str(tls_dir / "server.key"))}
max_connections = 100
shared_buffers = 32MB
# Throwaway data: durability is not worth the time.
fsync = off
synchronous_commit = off
full_page_writes = off
log_connections = on
"""
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write(conf)
        hba = f"""# sqlalchemy-rds-iam emulator: IAM logins only over TLS, verified by PAM.
# The unix socket lives in a directory only {self.user} can enter (setup, PgBouncer).
local     all all                trust
hostssl   all all 127.0.0.1/32   pam pamservice={self.pam_service}
hostssl   all all ::1/128        pam pamservice={self.pam_service}
hostnossl all all all            reject
"""
        (self.data / "pg_hba.conf").write_text(hba, encoding="utf-8")
        run_as(
            self.user,
            [
                str(bin_ / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
            ],
            cwd=self.root,
            timeout=90,
        )
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        users = "\n".join(f"CREATE ROLE {u} LOGIN; GRANT rds_iam TO {u};" for u in IAM_USERS)
        grants = "\n".join(
            f"GRANT ALL ON SCHEMA public TO {u}; GRANT ALL ON DATABASE {DATABASE} TO {u};"
            for u in IAM_USERS
        )
        psql = [
            str(bin_ / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
        ]
        # As on RDS: IAM users are LOGIN roles without a password, members of rds_iam.
        run_as(
            self.user,
            [*psql, "-d", "postgres"],
            stdin=f"CREATE ROLE rds_iam NOLOGIN;\n{users}\n"
            f"CREATE DATABASE {DATABASE} OWNER {IAM_USERS[0]};\n",
            cwd=self.root,
        )
        run_as(self.user, [*psql, "-d", DATABASE], stdin=grants, cwd=self.root)
        return pid


@dataclass
class MariaDbServer:
    """A private MariaDB: ``auth_pam`` with the cleartext client plugin, as RDS MySQL asks."""

    root: Path
    port: int
    pam_service: str
    bins: Binaries
    user: str = "mysql"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "mariadbd.sock"

    @property
    def log(self) -> Path:
        return self.root / "mariadb.log"

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
            env=_env(self.root),
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

    def start(self, cert: Path, key: Path, ca: Path) -> int:
        """Install the datadir, start mariadbd, create IAM users and database; return the pid."""
        make_dir(self.root, self.user, 0o755)
        make_dir(self.socket.parent, self.user, 0o755)
        tls_dir = make_dir(self.root / "tls", self.user, 0o700)
        for src, name, mode in (
            (cert, "server.crt", 0o644),
            (key, "server.key", 0o600),
            (ca, "ca.pem", 0o644),
        ):
            shutil.copyfile(src, tls_dir / name)
            chown(tls_dir / name, self.user, mode)
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
ssl-cert = {tls_dir / "server.crt"}
ssl-key = {tls_dir / "server.key"}
ssl-ca = {tls_dir / "ca.pem"}
plugin-load-add = {self.bins.mariadb_pam_plugin}
pam-use-cleartext-plugin = ON
innodb-buffer-pool-size = 32M
innodb-log-file-size = 16M
innodb-flush-log-at-trx-commit = 0
skip-log-bin
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
        pid = spawn_detached(
            self.user,
            [self.bins.mariadbd, f"--defaults-file={self.defaults_file}"],
            cwd=self.root,
            log=self.log,
        )
        wait_until(self._ready, what="mariadbd", pid=pid, log=self.log, timeout=60)
        users = "\n".join(
            f"CREATE USER '{u}'@'%' IDENTIFIED VIA pam USING '{self.pam_service}' REQUIRE SSL;\n"
            f"GRANT ALL ON `{DATABASE}`.* TO '{u}'@'%';"
            for u in IAM_USERS
        )
        # Anonymous users would shadow user@'%' for local logins: drop them.
        self._client(
            "DELETE FROM mysql.global_priv WHERE User = '';\nFLUSH PRIVILEGES;\n"  # noqa: S608
            f"CREATE DATABASE `{DATABASE}`;\n{users}\n"
        )
        return pid


@dataclass
class PgBouncerServer:
    """PgBouncer with PAM auth and client TLS in front of PostgreSQL: the RDS Proxy stand-in."""

    root: Path
    port: int
    postgres: PostgresServer
    bins: Binaries
    user: str = "postgres"

    @property
    def log(self) -> Path:
        return self.root / "pgbouncer.log"

    def start(self, cert: Path, key: Path, ca: Path) -> int:
        """Write the config and start pgbouncer (PAM service ``pgbouncer``); return the pid."""
        make_dir(self.root, self.user, 0o755)
        tls = self.postgres.root / "tls"
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
client_tls_cert_file = {tls / "server.crt"}
client_tls_key_file = {tls / "server.key"}
client_tls_ca_file = {ca}
server_tls_sslmode = disable
pool_mode = session
max_client_conn = 200
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options,search_path
logfile = {self.log}
pidfile = {self.root / "pgbouncer.pid"}
"""
        ini_path = write_file(self.root / "pgbouncer.ini", ini, self.user, 0o644)
        pid = spawn_detached(
            self.user, [self.bins.pgbouncer, str(ini_path)], cwd=self.root, log=self.log
        )
        wait_until(
            lambda: port_open(self.port), what="pgbouncer", pid=pid, log=self.log, timeout=30
        )
        return pid
