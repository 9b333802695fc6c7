"""How PAM reaches the verifier: the PAM module, the verifier process and its config.

The servers' PAM stacks load ``pam_rds_iam.so`` (built here from the shipped C source with
gcc at the first start, then cached by source hash), which sends the login user and the whole
password to the verifier over a Unix socket. The verifier is one long-running process per
emulator (:class:`~sqlalchemy_rds_iam.testing.verifier.VerifierService`) run as root from a
copy of ``verifier.py`` in the state directory; it listens on one socket per server, owned by
that server's system user with mode 0600, so that only that server (and root) can ask, and
the verifier knows which server asks without trusting the request.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy_rds_iam.testing import processes, servers
from sqlalchemy_rds_iam.testing.errors import EmulatorError, ServerBinariesMissingError
from sqlalchemy_rds_iam.testing.info import Identity

__all__ = [
    "PAM_MODULE_SOURCE",
    "RelayFiles",
    "VerifierFiles",
    "build_pam_module",
    "pam_stack",
    "start_relay",
    "start_verifier",
    "write_verifier_config",
]

PAM_MODULE_SOURCE = Path(__file__).with_name("pam_rds_iam.c")
#: Built modules, one per source hash: root's, readable by the server users that load them.
MODULE_CACHE = Path(os.environ.get("SQLALCHEMY_RDS_IAM_PAM_CACHE", "/var/cache/sqlalchemy-rds-iam"))
# sockaddr_un.sun_path holds 108 bytes, the terminating NUL included.
_MAX_SOCKET_PATH = 107


def build_pam_module(cache: Path = MODULE_CACHE) -> Path:
    """Return the path of ``pam_rds_iam.so`` for the shipped source, compiling it if needed."""
    source = PAM_MODULE_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = cache / f"pam_rds_iam-{digest}.so"
    if target.exists():
        return target
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None or not Path("/usr/include/security/pam_modules.h").exists():
        raise ServerBinariesMissingError(
            ["a C compiler and the PAM headers, to build the emulator's PAM module"],
            servers.DEBIAN_PACKAGES["pam"],
        )
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)
    tmp = cache / f".{target.name}.{os.getpid()}.tmp"
    proc = subprocess.run(  # noqa: S603 -- fixed argv
        [gcc, "-O2", "-Wall", "-fPIC", "-shared", "-o", str(tmp), str(PAM_MODULE_SOURCE), "-lpam"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise EmulatorError(f"building the PAM module failed:\n{proc.stderr.strip()[-2000:]}")
    tmp.chmod(0o644)
    os.replace(tmp, target)  # atomic: a concurrent start sees the old or the new file whole
    return target


def pam_stack(module: Path, socket: Path) -> str:
    """The PAM stack lines for one server: the verifier decides, account checks pass."""
    for part in (module, socket):
        if any(c.isspace() for c in str(part)):
            # PAM splits module arguments on white space, with no quoting.
            raise EmulatorError(f"the emulator's paths must not contain spaces: {part}")
    return (
        f"auth required {module} socket={socket}\n"
        f"account required {module}\n"
    )


class VerifierFiles:
    """Where one emulator's verifier keeps its config, sockets and readiness marker."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "verifier"
        self.script = state_dir / "verifier.py"
        self.config = self.dir / "config.json"
        self.ready = self.dir / "ready"
        self.log = self.dir / "verifier.log"

    def socket(self, server: str) -> Path:
        path = self.dir / f"{server}.sock"
        if len(str(path)) > _MAX_SOCKET_PATH:
            raise EmulatorError(
                f"the state directory's path is too long for a Unix socket ({path}); "
                "use a shorter one"
            )
        return path


def write_verifier_config(
    files: VerifierFiles,
    *,
    region: str,
    identities: Mapping[str, Identity],
    rate_limit: int | None,
    services: Mapping[str, Mapping[str, Any]],
    dsql_verifier: str | None = None,
) -> None:
    """Write (atomically replace) the verifier's config; a running verifier re-reads it."""
    config = {
        "region": region,
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
        "rate_limit": rate_limit,
        "ready_file": str(files.ready),
        "services": {name: dict(svc) for name, svc in services.items()},
        # Tokens for an emulated DSQL endpoint (services' "dsql") are checked by this file.
        "dsql_verifier": dsql_verifier or str(files.dir.parent / "dsql_verifier.py"),
    }
    tmp = files.config.with_suffix(f".{os.getpid()}.tmp")
    # 0600 root: it holds the (throwaway) secret keys.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2)
    os.replace(tmp, files.config)


def read_verifier_config(files: VerifierFiles) -> dict[str, Any]:
    """The config as written by :func:`write_verifier_config`."""
    config: dict[str, Any] = json.loads(files.config.read_text(encoding="utf-8"))
    return config


def start_verifier(files: VerifierFiles, *, timeout: float = 20) -> int:
    """Start the verifier process (root, detached) and wait until it listens; return its pid."""
    # A copy in the state dir: the process keeps running what it started with even if the
    # package is reinstalled, and root alone can change it.
    shutil.copyfile(Path(__file__).with_name("verifier.py"), files.script)
    files.script.chmod(0o644)
    for name in ("dsql_verifier.py", "sigv4_check.py"):  # loaded by path, next to it
        copy = files.dir.parent / name
        shutil.copyfile(Path(__file__).with_name(name), copy)
        copy.chmod(0o644)
    files.ready.unlink(missing_ok=True)
    # -I -S: isolated (no PYTHON* variables, no user site) and no site import: the
    # verifier is standard library only.
    argv = [sys.executable, "-I", "-S", str(files.script), "--config", str(files.config)]
    pid = processes.spawn_detached(None, argv, cwd=files.dir, log=files.log)
    processes.wait_until(
        files.ready.exists, what="the verifier", pid=pid, log=files.log, timeout=timeout
    )
    return pid


class RelayFiles:
    """Where one emulator's TLS relay keeps its script, config, log and readiness marker."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "relay"
        self.script = state_dir / "relay.py"
        self.config = self.dir / "config.json"
        self.ready = self.dir / "ready"
        self.log = self.dir / "relay.log"


def start_relay(
    files: RelayFiles, listeners: list[dict[str, Any]], *, timeout: float = 20
) -> int:
    """Start the TLS relay (root, detached, standard library only) for ``listeners``.

    Each listener is ``port``, ``protocol`` (postgresql or mysql), ``cert``, ``key``,
    ``backend_port`` and ``backend_ca``; returns the pid once every port listens.
    """
    files.dir.mkdir(mode=0o755, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("relay.py"), files.script)
    files.script.chmod(0o644)
    files.ready.unlink(missing_ok=True)
    config = {"ready_file": str(files.ready), "listeners": listeners}
    files.config.write_text(json.dumps(config, indent=2), encoding="utf-8")
    argv = [sys.executable, "-I", "-S", str(files.script), "--config", str(files.config)]
    pid = processes.spawn_detached(None, argv, cwd=files.dir, log=files.log)
    processes.wait_until(files.ready.exists, what="the TLS relay", pid=pid, log=files.log,
                       timeout=timeout)
    return pid
