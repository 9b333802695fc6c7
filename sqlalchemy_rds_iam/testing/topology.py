"""The emulator's real-looking AWS endpoints: which name, which server, which trust store.

Each row is one endpoint a client reaches by an AWS-style hostname (resolved to 127.0.0.1
through the emulator's ``/etc/hosts`` lines, see :mod:`~sqlalchemy_rds_iam.testing.hosts`).
The certificate each presents comes from a throwaway CA standing in for the trust store the
library picks for that kind of endpoint, so default options verify it only when the library
picks the right store. Endpoints of the commercial RDS store are served by the servers
themselves (their certificate names them too); the others by the emulator's TLS relay
(:mod:`~sqlalchemy_rds_iam.testing.relay`), one port each, since a server presents one
certificate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "DEFAULT_DRIVERS",
    "DSQL_ADMIN",
    "DSQL_DATABASE",
    "ENDPOINTS",
    "STORES",
    "EmulatedEndpoint",
    "EndpointSpec",
    "sqlalchemy_url",
]

#: Trust-store names (as in ``sqlalchemy_rds_iam.cabundle.TRUST_STORES``) with a stand-in CA.
STORES = ("rds-aws", "rds-aws-us-gov", "rds-aws-cn", "amazon-roots")
DSQL_DATABASE = "postgres"
DSQL_ADMIN = "admin"
#: The driver of a URL that names none: psycopg2 for PostgreSQL, PyMySQL for MySQL.
DEFAULT_DRIVERS = {"postgresql": "psycopg2", "mysql": "pymysql"}


def sqlalchemy_url(
    dialect: str,
    driver: str | None,
    user: str,
    host: str,
    port: int,
    database: str,
    query: Mapping[str, str],
    password: str | None = None,
) -> str:
    """``dialect+driver://user[:password]@host:port/database[?query]``: every emulator URL.

    ``driver`` None: the dialect's :data:`DEFAULT_DRIVERS` entry. User and password are
    percent-encoded whole; query values keep their ``/`` (CA paths stay readable); no query,
    no ``?``.
    """
    userinfo = quote(user, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    suffix = "?" + urlencode(query, safe="/") if query else ""
    return (
        f"{dialect}+{driver or DEFAULT_DRIVERS[dialect]}://{userinfo}@{host}:{port}"
        f"/{database}{suffix}"
    )


@dataclass(frozen=True)
class EndpointSpec:
    """One row of :data:`ENDPOINTS`."""

    key: str
    hostname: str
    #: The emulator server behind it (``postgresql``, ``mysql`` or ``pgbouncer``).
    server: str
    store: str
    region: str
    kind: str

    @property
    def relayed(self) -> bool:
        """Served through the TLS relay (its store is not the servers' own CA's)."""
        return self.store != "rds-aws"


_ID = "c0emulator0"
ENDPOINTS = (
    EndpointSpec("postgresql-instance", f"emu-pg.{_ID}.us-east-1.rds.amazonaws.com",
                 "postgresql", "rds-aws", "us-east-1", "instance"),
    EndpointSpec("postgresql-cluster", f"emu-pg.cluster-{_ID}.us-east-1.rds.amazonaws.com",
                 "postgresql", "rds-aws", "us-east-1", "cluster"),
    EndpointSpec("postgresql-govcloud", f"emu-pg.{_ID}.us-gov-west-1.rds.amazonaws.com",
                 "postgresql", "rds-aws-us-gov", "us-gov-west-1", "instance"),
    EndpointSpec("postgresql-china", f"emu-pg.{_ID}.rds.cn-north-1.amazonaws.com.cn",
                 "postgresql", "rds-aws-cn", "cn-north-1", "instance"),
    EndpointSpec("mysql-instance", f"emu-my.{_ID}.us-east-1.rds.amazonaws.com",
                 "mysql", "rds-aws", "us-east-1", "instance"),
    EndpointSpec("mysql-cluster", f"emu-my.cluster-{_ID}.us-east-1.rds.amazonaws.com",
                 "mysql", "rds-aws", "us-east-1", "cluster"),
    EndpointSpec("mysql-govcloud", f"emu-my.{_ID}.us-gov-west-1.rds.amazonaws.com",
                 "mysql", "rds-aws-us-gov", "us-gov-west-1", "instance"),
    EndpointSpec("mysql-china", f"emu-my.{_ID}.rds.cn-north-1.amazonaws.com.cn",
                 "mysql", "rds-aws-cn", "cn-north-1", "instance"),
    # PgBouncer stands in for RDS Proxy; its own port keeps the emulator CA's certificate.
    EndpointSpec("proxy", f"emu.proxy-{_ID}.us-east-1.rds.amazonaws.com",
                 "pgbouncer", "amazon-roots", "us-east-1", "proxy"),
    EndpointSpec("dsql", f"{_ID}dsqlcluster0000.dsql.us-east-1.on.aws",
                 "postgresql", "amazon-roots", "us-east-1", "dsql"),
)


@dataclass(frozen=True)
class EmulatedEndpoint:
    """A running real-looking endpoint: name, port, and what a client needs to use it."""

    key: str
    hostname: str
    port: int
    server: str
    dialect: str
    store: str
    region: str
    kind: str
    database: str
    users: tuple[str, ...]

    @property
    def endpoint(self) -> str:
        """``host:port`` (DSQL tokens are signed for the host alone)."""
        return f"{self.hostname}:{self.port}"

    def url(self, user: str | None = None, driver: str | None = None, **query: str) -> str:
        """A URL with the plugin and no TLS or region option: the defaults must do."""
        return sqlalchemy_url(self.dialect, driver, user or self.users[0], self.hostname,
                              self.port, self.database, {"plugin": "rds_iam", **query})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EmulatedEndpoint:
        return cls(**{**raw, "users": tuple(raw["users"])})


def seam_json(trust_stores: dict[str, str]) -> str:
    """The value of ``SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES`` for these stand-in CA files."""
    return json.dumps(dict(sorted(trust_stores.items())))
