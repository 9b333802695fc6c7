"""Start a fresh emulator: pick the servers, wire PAM to the verifier, start everything.

:class:`Launch` does one start from a :class:`~sqlalchemy_rds_iam.testing.layout.Layout` (the
:class:`~sqlalchemy_rds_iam.testing.emulator.Emulator` holds the lock and decides whether a
start is needed); :func:`teardown` ends whatever
a state directory ran, recorded or not. Each process's pid is recorded in the state file the
moment it exists, and a failure in one server is reported together with the others', so a
start that fails halfway hides no error and leaves nothing unrecorded.
"""

from __future__ import annotations

import secrets
import shutil
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy_rds_iam.testing import hosts, pam, processes, servers, topology, wiring
from sqlalchemy_rds_iam.testing.errors import EmulatorError
from sqlalchemy_rds_iam.testing.identities import make_identities
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity, ServerInfo
from sqlalchemy_rds_iam.testing.layout import Layout

__all__ = ["HOST", "SERVER_CLASSES", "Launch", "plan_servers", "restart", "teardown"]

HOST = "localhost"
VERIFIER_NAMES = ("python*",)
_SERVER_PROCESS_NAMES = ("postgres", "mariadbd", "mysqld", "pgbouncer")
SERVER_CLASSES: dict[str, type[servers.Server]] = {
    "postgresql": servers.PostgresServer,
    "mysql": servers.MariaDbServer,
    "pgbouncer": servers.PgBouncerServer,
}
#: Each server's directory under the state dir.
_ROOTS = {"postgresql": "postgresql", "mysql": "mariadb", "pgbouncer": "pgbouncer"}


def plan_servers(
    binaries: servers.Binaries, requested: tuple[str, ...] | None, *, pgbouncer: bool = True
) -> dict[str, str | None]:
    """Each server to run (None) or skip (the reason); raise if a requested one can't run."""
    if requested is not None:
        binaries.require(requested)
        wanted = [n for n in servers.SERVER_NAMES if n in requested]
    else:
        wanted = list(binaries.available)
        if not wanted:
            binaries.require(servers.SERVER_NAMES[:2])
    if not pgbouncer and "pgbouncer" in wanted:
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


class Launch:
    """One start of the emulator laid out by ``layout`` (lock held, state directory absent)."""

    def __init__(
        self,
        layout: Layout,
        *,
        region: str,
        identities: Mapping[str, Identity],
        rate_limit: int | None,
    ) -> None:
        self.layout = layout
        self.region = region
        self.extra_identities = identities
        self.rate_limit = rate_limit

    def run(self, binaries: servers.Binaries, names: dict[str, str | None]) -> EmulatorInfo:
        """Start everything ``names`` says to run; return the info clients need."""
        from sqlalchemy_rds_iam.testing.certs import (  # cryptography: lazily
            make_stand_ins,
            make_tls_files,
        )

        em = self.layout
        state_dir = em.state_dir
        state_dir.mkdir(parents=True, mode=0o755)
        state_dir.chmod(0o755)  # the servers' users must traverse it
        em.state.begin()
        module = wiring.build_pam_module()
        identities = {**make_identities(), **self.extra_identities}
        running = [n for n, why in names.items() if why is None]
        ports: dict[str, int] = {}
        for name in running:
            port = processes.free_port()
            while port in ports.values():
                port = processes.free_port()
            ports[name] = port
        rows = [e for e in topology.ENDPOINTS if e.server in running]
        relay_ports: dict[str, int] = {}
        for row in rows:
            if row.relayed:
                port = processes.free_port()
                while port in ports.values() or port in relay_ports.values():
                    port = processes.free_port()
                relay_ports[row.key] = port
        by_store: dict[str, tuple[str, ...]] = {s: () for s in topology.STORES}
        for row in rows:
            by_store[row.store] += (row.hostname,)
        # The servers' own certificate is the commercial RDS stand-in's (the emulator CA).
        tls = make_tls_files(state_dir / "tls", names=by_store.pop("rds-aws"))
        stand_ins = make_stand_ins(state_dir / "tls", by_store)
        trust_stores = {"rds-aws": str(tls.ca_cert)}
        trust_stores.update({store: str(f.ca_cert) for store, f in stand_ins.items()})
        endpoints = {
            row.key: topology.EmulatedEndpoint(
                key=row.key,
                hostname=row.hostname,
                port=relay_ports.get(row.key, ports[row.server]),
                server=row.server,
                dialect="mysql" if row.server == "mysql" else "postgresql",
                store=row.store,
                region=row.region,
                kind=row.kind,
                database=topology.DSQL_DATABASE if row.kind == "dsql" else servers.DATABASE,
                users=(topology.DSQL_ADMIN, *servers.IAM_USERS)
                if row.kind == "dsql"
                else servers.IAM_USERS,
            )
            for row in rows
        }
        passwords = {n: secrets.token_hex(16) for n in ("postgresql", "mysql")}

        instances = self._instances(binaries, running, ports, passwords)
        em.verifier.dir.mkdir(mode=0o755)
        services: dict[str, dict[str, Any]] = {}
        for name, server in instances.items():
            log = em.verifier.dir / f"{name}.log"
            processes.write_file(log, "", "root", 0o644)
            uid, _ = processes.user_ids(server.user)
            services[name] = {
                # What a client may sign for: the name the certificate carries.
                "endpoints": [f"{HOST}:{ports[name]}", f"127.0.0.1:{ports[name]}"],
                "log": str(log),
                "socket": str(em.verifier.socket(name)),
                "owner": uid,
                "wake_port": ports[name] if name == "pgbouncer" else None,
                "max_password": servers.MAX_PASSWORD.get(name),
            }
            mine = [e for e in endpoints.values() if e.server == name]
            services[name]["endpoints"] += [e.endpoint for e in mine if e.kind != "dsql"]
            services[name]["regions"] = {
                e.endpoint: e.region for e in mine if e.region != self.region
            }
            services[name]["dsql"] = {e.hostname: e.region for e in mine if e.kind == "dsql"}
        wiring.write_verifier_config(
            em.verifier,
            region=self.region,
            identities=identities,
            rate_limit=self.rate_limit or None,
            services=services,
        )
        em.state.record_pid("verifier", wiring.start_verifier(em.verifier))
        for name, server in instances.items():
            stack = wiring.pam_stack(module, em.verifier.socket(name))
            if isinstance(server, servers.PgBouncerServer):
                assert server.pam_dir is not None
                processes.make_dir(server.pam_dir, "root", 0o755)
                processes.write_file(server.pam_dir / "pgbouncer", stack, "root", 0o644)
            else:
                text = pam.service_text(state_dir, stack)
                pam.install(em.pam_services[name], text, state_dir, em.backup_dir)
            server.prepare(tls)

        hosts.add(state_dir, [e.hostname for e in endpoints.values()])
        listeners = [
            {
                "port": e.port,
                "protocol": e.dialect,
                "cert": str(stand_ins[e.store].server_cert),
                "key": str(stand_ins[e.store].server_key),
                "backend_port": ports[e.server],
                "backend_ca": str(tls.ca_cert),
            }
            for e in endpoints.values()
            if e.key in relay_ports
        ]
        em.state.record_pid("relay", wiring.start_relay(wiring.RelayFiles(state_dir), listeners))
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
                pam_service=em.pam_services[name],
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
            topology=endpoints,
            trust_stores=trust_stores,
        )
        em.state.finish(info.to_dict())
        return info

    def _instances(
        self,
        binaries: servers.Binaries,
        running: list[str],
        ports: dict[str, int],
        passwords: dict[str, str],
    ) -> dict[str, servers.Server]:
        instances: dict[str, servers.Server] = {}
        for name in running:
            pg = instances.get("postgresql")
            instances[name] = server_instance(
                self.layout,
                binaries,
                name,
                ports[name],
                passwords.get(name, ""),
                postgres=pg if isinstance(pg, servers.PostgresServer) else None,
            )
        return instances

    def _start_servers(self, instances: dict[str, servers.Server], tls: Any) -> None:
        """Start the databases in parallel, then PgBouncer; report every failure, not one.

        Each server records its pid the moment its process exists, so a failure anywhere
        leaves nothing unrecorded for the cleanup.
        """

        def recorder(name: str) -> Callable[[int], None]:
            return lambda pid: self.layout.state.record_pid(name, pid)

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


def server_instance(
    layout: Layout,
    binaries: servers.Binaries,
    name: str,
    port: int,
    password: str,
    *,
    postgres: servers.PostgresServer | None = None,
) -> servers.Server:
    """The :class:`~servers.Server` object for ``name`` under ``layout``'s state dir."""
    root = layout.state_dir / _ROOTS[name]
    if name == "pgbouncer":
        return servers.PgBouncerServer(
            root, port, binaries, postgres=postgres, pam_dir=root / "pam.d"
        )
    cls = SERVER_CLASSES[name]
    assert issubclass(cls, servers.DatabaseServer)
    return cls(root, port, binaries, pam_service=layout.pam_services[name], password=password)


def restart(layout: Layout, info: EmulatorInfo, name: str) -> None:
    """Stop server ``name`` of a running emulator, then start it again (lock held).

    The same server comes back: its data, port, certificate and PAM wiring are kept; only
    its process is new (recorded in the state file as soon as it exists). Clients see what
    a database restart or failover looks like: their connections drop, new logins work.
    """
    server = info.servers[name]  # ServerNotRunningError if this emulator runs without it
    cls = SERVER_CLASSES[name]
    state = layout.state.read() or {}
    pid = state.get("pids", {}).get(name)
    if pid is not None and processes.process_alive(pid, cls.process_names):
        processes.terminate(pid, cls.stop_signal)

    def record(new_pid: int) -> None:
        current = layout.state.read() or state
        current.setdefault("pids", {})[name] = new_pid
        layout.state.write(current)

    binaries = servers.find_binaries()
    server_instance(layout, binaries, name, server.port, server.password or "").launch(record)


def teardown(layout: Layout) -> None:
    """End everything this state dir ran, recorded or not, and remove its traces."""
    state = layout.state.read() or {}
    recorded: dict[str, int] = state.get("pids", {})
    # PgBouncer first: it holds connections to PostgreSQL. The verifier last.
    for name in ("relay", "pgbouncer", "mysql", "postgresql", "verifier"):
        pid = recorded.get(name)
        names: tuple[str, ...]
        sig: int
        if name in ("verifier", "relay"):
            names, sig = VERIFIER_NAMES, signal.SIGTERM
        else:
            cls = SERVER_CLASSES[name]
            names, sig = cls.process_names, cls.stop_signal
        if pid is not None and processes.process_alive(pid, names):
            processes.terminate(pid, sig)
    # A run that crashed before recording its pids: find processes by their paths.
    if layout.state_dir.exists():
        for pid in processes.processes_under(layout.state_dir, _SERVER_PROCESS_NAMES):
            processes.terminate(pid, signal.SIGINT if _is_postgres(pid) else signal.SIGTERM)
        for script in (layout.verifier.script, wiring.RelayFiles(layout.state_dir).script):
            for pid in processes.processes_under(layout.state_dir, VERIFIER_NAMES,
                                               arg=str(script)):
                processes.terminate(pid)
    hosts.remove(layout.state_dir)
    # Every name this state dir may have used (an older version wrote pgbouncer's too).
    for name in {*layout.pam_services.values(), "pgbouncer"}:
        pam.remove(name, layout.state_dir, layout.backup_dir)
    if layout.state_dir.exists():
        shutil.rmtree(layout.state_dir)
    if layout.link is not None and layout.link.is_symlink():
        layout.link.unlink()


def _is_postgres(pid: int) -> bool:
    return processes.process_alive(pid, ("postgres",))
