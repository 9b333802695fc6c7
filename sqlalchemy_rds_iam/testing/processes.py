"""Child processes and the system users they run as: the emulator's generic process tools.

Nothing here knows a database: free ports and whether one answers, files and directories
owned by a server's user, setup commands run as that user, long-running processes started
detached (new session, reparented to init, so ``emulator start`` can exit and a later
``emulator stop`` can end them by pid), and finding, waiting for and ending processes by
pid. :mod:`~sqlalchemy_rds_iam.testing.servers` builds the servers on these.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy_rds_iam.testing.errors import EmulatorError

__all__ = [
    "ENV_PATH",
    "child_env",
    "chown",
    "free_port",
    "make_dir",
    "port_open",
    "process_alive",
    "processes_under",
    "run_as",
    "spawn_detached",
    "terminate",
    "user_ids",
    "wait_until",
    "write_file",
]

#: The only PATH children get (and the one server programs are looked up on).
ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def user_ids(user: str) -> tuple[int, int]:
    """``user``'s uid and gid; a missing one means its server package is not installed."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise EmulatorError(
            f"system user {user!r} does not exist: is its server package installed?"
        ) from exc
    return entry.pw_uid, entry.pw_gid


def chown(path: Path, user: str, mode: int | None = None) -> None:
    """Give ``path`` to ``user`` (and optionally set its mode)."""
    uid, gid = user_ids(user)
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


def child_env(home: Path) -> dict[str, str]:
    """The whole environment of a child: fixed PATH and locale, ``HOME`` = ``home``."""
    return {"PATH": ENV_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(home)}


def run_as(
    user: str,
    argv: Sequence[str],
    *,
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 120,
) -> str:
    """Run a setup command as ``user``; raise :class:`EmulatorError` with its output on failure."""
    uid, gid = user_ids(user)
    try:
        proc = subprocess.run(  # noqa: S603 -- fixed argv built by the emulator
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=child_env(cwd),
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


def spawn_detached(user: str | None, argv: Sequence[str], *, cwd: Path, log: Path) -> int:
    """Start a long-running process as ``user`` (None: root), detached from us; return its pid.

    ``sh`` backgrounds the process and exits, so the process is reparented to init: it
    outlives the caller and never becomes the caller's zombie when it is stopped.
    """
    uid = gid = None
    if user is not None:
        uid, gid = user_ids(user)
    env = child_env(cwd)
    env["EMULATOR_LOG"] = str(log)
    proc = subprocess.run(  # noqa: S603 -- fixed argv built by the emulator
        ["/bin/sh", "-c", '"$@" >>"$EMULATOR_LOG" 2>&1 </dev/null & echo $!', "sh", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        user=uid,
        group=gid,
        extra_groups=None if user is None else [],
        start_new_session=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        raise EmulatorError(f"could not start {argv[0]}: {proc.stderr.strip()}")
    return int(proc.stdout.strip())


def _named(argv0: str, names: Sequence[str]) -> bool:
    """Whether ``argv0``'s basename is one of ``names`` (``"python*"``: a prefix)."""
    base = os.path.basename(argv0)
    return any(base.startswith(n[:-1]) if n.endswith("*") else base == n for n in names)


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
    return not names or _named(argv0, names)


def processes_under(directory: Path, names: Sequence[str], *, arg: str | None = None) -> list[int]:
    """Pids of ``names`` processes whose command line mentions ``directory`` (or has ``arg``).

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
        wanted = arg in argv[1:] if arg is not None else any(needle in a for a in argv[1:])
        if _named(argv[0], names) and wanted:
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
