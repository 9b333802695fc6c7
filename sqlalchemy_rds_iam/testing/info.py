"""What a client needs to use a running emulator: endpoints, CA, identities, verifier log.

Plain dataclasses that round-trip through JSON (``emulator start --json`` prints one), so a
test process, a demo script or another language can use an emulator some other process
started. Nothing here imports botocore or SQLAlchemy.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy_rds_iam.testing.errors import ServerNotRunningError
from sqlalchemy_rds_iam.testing.topology import (
    DEFAULT_DRIVERS,
    EmulatedEndpoint,
    seam_json,
    sqlalchemy_url,
)
from sqlalchemy_rds_iam.testing.verifier import token_fingerprint

__all__ = ["EmulatorInfo", "Identity", "ServerInfo", "ServerMap", "Verification"]


@dataclass(frozen=True)
class Identity:
    """A throwaway AWS identity the emulator's verifier knows (all values are fake)."""

    name: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    #: Database users this identity may connect as (``"*"``: any), the emulated IAM policy.
    allowed_users: tuple[str, ...] = ("*",)

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, access_key_id={self.access_key_id!r})"

    @classmethod
    def parse(cls, text: str) -> Identity:
        """``NAME=ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]`` (``emulator start --identity``)."""
        name, eq, keys = text.partition("=")
        parts = keys.split(":", 2)
        if not eq or not name or len(parts) < 2 or not all(parts):
            raise ValueError(
                "an identity is NAME=ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN], got "
                f"{name or text[:20]!r}..."
            )
        return cls(name, parts[0], parts[1], parts[2] if len(parts) == 3 else None)


@dataclass(frozen=True)
class Verification:
    """One decision of the verifier, as logged (never holds the token)."""

    time: float
    service: str
    user: str
    ok: bool
    reason: str
    access_key_id: str | None
    token_length: int
    elapsed_ms: float | None = None
    #: :func:`~sqlalchemy_rds_iam.testing.verifier.token_fingerprint` of the token received.
    token_sha256: str | None = None

    @property
    def code(self) -> str:
        """The stable part of the reason, e.g. ``"signature"`` or ``"ok"``."""
        return self.reason.partition(":")[0]


# URL query that makes each driver verify the server's certificate chain and name.
_LIBPQ_TLS = {"sslmode": "verify-full", "sslrootcert": "{ca}"}
_PASSWORD_TLS: dict[str, dict[str, str]] = {
    "psycopg2": _LIBPQ_TLS,
    "psycopg": _LIBPQ_TLS,
    # SQLAlchemy folds ssl_* into PyMySQL's ssl={...}: a CA there means verify the chain.
    "pymysql": {"ssl_ca": "{ca}", "ssl_check_hostname": "true"},
    "mysqldb": {"ssl_ca": "{ca}", "ssl_mode": "VERIFY_IDENTITY"},
}


@dataclass(frozen=True)
class ServerInfo:
    """One emulated endpoint: a database server (or the PgBouncer proxy) verifying IAM tokens."""

    name: str
    #: SQLAlchemy dialect name: ``postgresql`` or ``mysql``.
    dialect: str
    host: str
    port: int
    database: str
    users: tuple[str, ...]
    ca_path: str
    region: str
    pam_service: str
    verifier_log: str
    #: A user outside ``rds_iam`` that logs in with :attr:`password` (None on PgBouncer).
    password_user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        """``host:port``, what a token must be signed for."""
        return f"{self.host}:{self.port}"

    def url(
        self,
        user: str | None = None,
        driver: str | None = None,
        *,
        plugin: bool = True,
        **query: str,
    ) -> str:
        """An SQLAlchemy URL for ``user`` (default: the first IAM user) using the plugin.

        ``driver`` defaults to psycopg2 / pymysql; extra keyword arguments become query
        options and override the defaults (e.g. ``aws_profile="x"``).
        """
        options: dict[str, str] = {}
        if plugin:
            options = {
                "plugin": "rds_iam",
                "aws_region": self.region,
                "iam_ca_bundle": self.ca_path,
            }
        options.update(query)
        return sqlalchemy_url(self.dialect, driver, user or self.users[0], self.host, self.port,
                              self.database, options)

    def password_url(self, driver: str | None = None, **query: str) -> str:
        """An SQLAlchemy URL for the password user, without the plugin, over verified TLS.

        The TLS options are the libpq ones (psycopg2, psycopg) or PyMySQL/mysqlclient's
        ``ssl_ca``; other drivers need their own in ``query``. For comparing an IAM login
        with a password login on the same server.
        """
        if self.password_user is None or self.password is None:
            raise ServerNotRunningError(
                f"{self.name} password login", "only PostgreSQL and MariaDB have a password user"
            )
        driver = driver or DEFAULT_DRIVERS[self.dialect]
        options = {k: v.format(ca=self.ca_path) for k, v in _PASSWORD_TLS.get(driver, {}).items()}
        options.update(query)
        return sqlalchemy_url(self.dialect, driver, self.password_user, self.host, self.port,
                              self.database, options, password=self.password)

    def log_offset(self) -> int:
        """The verifier log's current size: pass it to :meth:`verifications` later."""
        try:
            return os.stat(self.verifier_log).st_size
        except FileNotFoundError:
            return 0

    def verifications(self, since: int = 0, *, token: str | None = None) -> list[Verification]:
        """Decisions the verifier logged for this server after byte offset ``since``.

        With ``token``, only the decisions on that token: other processes may be logging in
        to a shared emulator at the same time.
        """
        try:
            with open(self.verifier_log, "rb") as fh:
                fh.seek(since)
                data = fh.read()
        except FileNotFoundError:
            return []
        data = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        known = set(Verification.__dataclass_fields__)
        wanted = token_fingerprint(token) if token is not None else None
        result = []
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                if wanted is None or raw.get("token_sha256") == wanted:
                    result.append(Verification(**{k: v for k, v in raw.items() if k in known}))
        return result


class ServerMap(dict[str, ServerInfo]):
    """``info.servers``: a dict whose missing entries raise :class:`ServerNotRunningError`."""

    skipped: dict[str, str]

    def __missing__(self, name: str) -> ServerInfo:
        reason = getattr(self, "skipped", {}).get(name, "not started (see servers=)")
        raise ServerNotRunningError(name, reason)


@dataclass(frozen=True)
class EmulatorInfo:
    """Everything a client needs: servers, CA bundle, region and identities to sign with."""

    state_dir: str
    region: str
    ca_path: str
    identities: dict[str, Identity] = field(default_factory=dict)
    servers: dict[str, ServerInfo] = field(default_factory=dict)
    #: Servers left out, with why (e.g. ``{"pgbouncer": "not installed (Debian: pgbouncer)"}``).
    skipped: dict[str, str] = field(default_factory=dict)
    #: New IAM tokens per second each server accepts before throttling; None: no limit.
    rate_limit: int | None = None
    #: Real-looking AWS endpoints (``/etc/hosts`` resolves them to 127.0.0.1), by key:
    #: ``postgresql-instance``, ``mysql-cluster``, ``proxy``, ``dsql``... (see ``topology``).
    topology: dict[str, EmulatedEndpoint] = field(default_factory=dict)
    #: Trust-store name (``rds-aws``, ``rds-aws-us-gov``, ``rds-aws-cn``, ``amazon-roots``)
    #: -> the PEM of the throwaway CA standing in for it.
    trust_stores: dict[str, str] = field(default_factory=dict)

    def trust_store_env(self) -> dict[str, str]:
        """The test seam: ``SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES`` -> the stand-in CAs.

        With it set, default options verify each endpoint of :attr:`topology` exactly when
        the library picks that endpoint's trust store.
        """
        return {"SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES": seam_json(self.trust_stores)}

    def __post_init__(self) -> None:
        servers = ServerMap(self.servers)
        servers.skipped = dict(self.skipped)
        object.__setattr__(self, "servers", servers)

    @property
    def postgresql(self) -> ServerInfo:
        """The PostgreSQL server: IAM (PAM) for ``rds_iam`` members, SCRAM for others."""
        return self.servers["postgresql"]

    @property
    def mysql(self) -> ServerInfo:
        """The MariaDB server (``auth_pam`` with the cleartext client plugin, as RDS MySQL)."""
        return self.servers["mysql"]

    @property
    def pgbouncer(self) -> ServerInfo:
        """PgBouncer in front of PostgreSQL, the stand-in for RDS Proxy."""
        return self.servers["pgbouncer"]

    def aws_env(self, identity: str = "primary") -> dict[str, str]:
        """Environment variables that make botocore sign as ``identity``."""
        ident = self.identities[identity]
        env = {
            "AWS_ACCESS_KEY_ID": ident.access_key_id,
            "AWS_SECRET_ACCESS_KEY": ident.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        if ident.session_token is not None:
            env["AWS_SESSION_TOKEN"] = ident.session_token
        return env

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["servers"] = dict(data["servers"])
        data["topology"] = {k: asdict(e) for k, e in self.topology.items()}
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The info as JSON, e.g. for ``emulator start --json``."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorInfo:
        """Rebuild the info from :meth:`to_dict`'s output."""
        identities = {
            name: Identity(**{**raw, "allowed_users": tuple(raw.get("allowed_users", ("*",)))})
            for name, raw in data["identities"].items()
        }
        servers = {
            name: ServerInfo(**{**raw, "users": tuple(raw["users"])})
            for name, raw in data["servers"].items()
        }
        return cls(
            state_dir=data["state_dir"],
            region=data["region"],
            ca_path=data["ca_path"],
            identities=identities,
            servers=servers,
            skipped=dict(data.get("skipped", {})),
            rate_limit=data.get("rate_limit"),
            topology={k: EmulatedEndpoint.from_dict(e)
                      for k, e in data.get("topology", {}).items()},
            trust_stores=dict(data.get("trust_stores", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> EmulatorInfo:
        """Rebuild the info from :meth:`to_json`'s output."""
        return cls.from_dict(json.loads(text))
