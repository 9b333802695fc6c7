"""``sqlalchemy-rds-iam doctor URL``: find the first reason an IAM login fails, and say what to fix.

Each step runs only if the previous one passed; the failing step picks the exit code,
so scripts can tell "no credentials" from "server unreachable" from "login refused".
Servers answer a failed IAM login with one opaque line ("PAM authentication failed",
"Access denied ... (using password: YES)"): the login step prints the checklist for it.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .credentials import FrozenCredentials
from .errors import CredentialsError, RdsIamError

__all__ = ["EXIT_CODES", "Step", "diagnose"]

#: Exit code per failing step (0: every step passed; 1 is left for unexpected errors).
EXIT_CODES = {
    "options": 2,
    "region": 3,
    "credentials": 4,
    "dns": 5,
    "tcp": 6,
    "tls": 7,
    "certificate": 8,
    "token": 9,
    "login": 10,
}

LOGIN_CHECKLIST = (
    "the server refused the token. Check, in this order:\n"
    "  1. IAM database authentication is enabled on the instance/cluster "
    "(modify-db-instance/-cluster --enable-iam-database-authentication).\n"
    "  2. The database user exists and is an IAM user: PostgreSQL `CREATE USER {user}; "
    "GRANT rds_iam TO {user};`, MySQL `CREATE USER {user} IDENTIFIED WITH "
    "AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;`.\n"
    "  3. The caller's IAM policy allows rds-db:connect on "
    "arn:{partition}:rds-db:{region}:<account>:dbuser:<DbiResourceId>/{user} (the cluster's "
    "or instance's resource id, db-/cluster-..., not its name; for RDS Proxy the proxy's "
    "prx- id).\n"
    "  4. The token's region ({region}) is the database's region.\n"
    "  5. This machine's clock is right (tokens are valid 15 minutes from signing) and the "
    "credentials have not expired.\n"
    "  6. The host and port signed ({host}:{port}) are the ones the server expects: set "
    "iam_host/iam_port when connecting through a tunnel or a load balancer."
)


@dataclass(frozen=True)
class Step:
    """One diagnosis step: what was checked, what was found, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Failed(Exception):
    def __init__(self, step: Step) -> None:
        super().__init__(step.detail)
        self.step = step


def _fail(name: str, detail: str, fix: str) -> _Failed:
    return _Failed(Step(name, False, detail, fix))


def _pg_starttls(sock: socket.socket) -> bool:
    """Send PostgreSQL's SSLRequest; True if the server agrees to TLS."""
    sock.sendall(struct.pack("!II", 8, 80877103))
    return sock.recv(1) == b"S"


def _mysql_starttls(sock: socket.socket) -> bool:
    """Read the MySQL greeting; if it offers TLS, send the SSL request packet; True if so."""
    header = sock.recv(4)
    length = int.from_bytes(header[:3], "little")
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        if not chunk:
            break
        payload += chunk
    if not payload or payload[0] != 10:  # protocol v10; 0xff is an error packet
        return False
    end = payload.index(b"\0", 1)
    caps_offset = end + 1 + 4 + 8 + 1
    capabilities = int.from_bytes(payload[caps_offset : caps_offset + 2], "little")
    client_ssl, protocol_41, secure_auth = 0x800, 0x200, 0x8000
    if not capabilities & client_ssl:
        return False
    flags = client_ssl | protocol_41 | secure_auth
    request = struct.pack("<IIB23x", flags, 1 << 24, 33)
    sock.sendall(len(request).to_bytes(3, "little") + b"\x01" + request)
    return True


_STARTTLS: dict[str, Callable[[socket.socket], bool]] = {
    "postgresql": _pg_starttls,
    "mysql": _mysql_starttls,
}


def diagnose(
    url: str,
    *,
    timeout: float = 5.0,
    on_step: Callable[[Step], None] | None = None,
    whoami: bool = False,
) -> list[Step]:
    """Run the steps for ``url`` (any URL the plugin accepts); a failed step is the last one."""
    steps: list[Step] = []

    def record(step: Step) -> None:
        steps.append(step)
        if on_step:
            on_step(step)

    try:
        _run(url, timeout, record, whoami)
    except _Failed as failed:
        record(failed.step)
    return steps


def _caller_arn(credentials: FrozenCredentials, region: str, timeout: float) -> str:
    """Whose credentials these are, from STS GetCallerIdentity (needs no IAM permission)."""
    import botocore.session
    from botocore.config import Config

    client: Any = botocore.session.Session().create_client(
        "sts",
        region_name=region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
    )
    return str(client.get_caller_identity()["Arn"])


def _engine(url: Any, is_async: bool) -> Any:
    """A one-connection engine with the plugin, async for async drivers."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    if is_async:
        from sqlalchemy.ext.asyncio import create_async_engine

        return create_async_engine(url, plugins=["rds_iam"], poolclass=NullPool)
    return create_engine(url, plugins=["rds_iam"], poolclass=NullPool)


def _login(engine: Any, is_async: bool) -> None:
    """Log in once and run ``SELECT 1``; driver errors propagate as SQLAlchemy's DBAPIError."""
    if not is_async:
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        finally:
            engine.dispose()
        return

    import asyncio

    async def login() -> None:
        try:
            async with engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        finally:
            await engine.dispose()

    asyncio.run(login())


def _run(text: str, timeout: float, record: Callable[[Step], None], whoami: bool) -> None:
    import sqlalchemy as sa

    from .cabundle import default_ca_bundle, missing_region_root
    from .credentials import source_for
    from .drivers import driver_for
    from .endpoints import parse_hostname
    from .options import parse_options
    from .plugin import connector
    from .tls import ssl_context

    # 1. options
    try:
        url = sa.make_url(text).difference_update_query(["plugin", "plugins"])
        options = parse_options(url.query)
        dialect = url.get_dialect()()
        spec = driver_for(dialect.name, dialect.driver, is_async=dialect.is_async)
    except (RdsIamError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise _fail("options", str(exc), "fix the URL (see the README's option table)") from None
    host = options.iam_host or url.host or ""
    port = options.iam_port or url.port or spec.default_port
    record(
        Step(
            "options",
            True,
            f"{url.get_backend_name()}+{dialect.driver} as {url.username} "
            f"to {url.host}:{url.port or spec.default_port}, iam_tls={options.iam_tls}",
        )
    )

    # 2. region
    source = source_for(options)
    endpoint = parse_hostname(host)
    try:
        region = options.aws_region or (endpoint.region if endpoint else None) or source.region()
    except CredentialsError as exc:  # a missing profile, a config file that does not parse
        raise _fail("credentials", str(exc), "fix the AWS configuration (see above)") from None
    except RdsIamError as exc:
        raise _fail("region", str(exc), "fix the AWS profile configuration") from None
    if not region:
        raise _fail(
            "region",
            f"no region for {host}: not an RDS hostname and none configured",
            "add aws_region=<region> to the URL, or set AWS_REGION",
        )
    if endpoint and endpoint.region is None and not options.aws_region:
        raise _fail(
            "region",
            f"{host} is an Aurora global writer endpoint: its name has no region",
            "add aws_region=<the current primary cluster's region> to the URL",
        )
    if endpoint and endpoint.region and endpoint.region != region:
        raise _fail(
            "region",
            f"aws_region={region} but {host} is in {endpoint.region}",
            f"use aws_region={endpoint.region} (or drop it: the hostname says it)",
        )
    where = (
        f"from the hostname ({endpoint.kind} endpoint)"
        if endpoint and not options.aws_region
        else ("from aws_region" if options.aws_region else "from the AWS configuration")
    )
    record(Step("region", True, f"{region}, {where}"))

    # 3. credentials
    try:
        credentials = source.frozen()
    except RdsIamError as exc:
        raise _fail("credentials", str(exc), "provide AWS credentials (see the message)") from None
    lifetime = "long-lived"
    if credentials.expiry is not None:
        import time

        left = credentials.expiry - time.time()
        lifetime = f"temporary, {left / 60:.0f} min left"
        if left <= 0:
            raise _fail(
                "credentials",
                "the credentials have expired",
                "refresh or re-login (aws sso login, ...)",
            )
    owner = ""
    if whoami:
        try:
            owner = f", {_caller_arn(credentials, region, timeout)}"
        except Exception as exc:  # botocore's ClientError, EndpointConnectionError, ...
            raise _fail(
                "credentials",
                f"STS GetCallerIdentity failed: {type(exc).__name__}: {exc}",
                "the credentials are invalid, expired or revoked, or STS is unreachable "
                "(in a VPC without internet access, add an STS interface endpoint)",
            ) from None
    record(
        Step(
            "credentials",
            True,
            f"access key {credentials.access_key} ({lifetime}; "
            f"{'session token' if credentials.token else 'no session token'}), "
            f"{source.describe()}{owner}",
        )
    )

    # 4. DNS, 5. TCP
    connect_host = url.host or host
    connect_port = url.port or spec.default_port
    try:
        addresses = socket.getaddrinfo(connect_host, connect_port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _fail(
            "dns",
            f"cannot resolve {connect_host}: {exc}",
            "check the endpoint name; inside a VPC, check the DNS resolver",
        ) from None
    record(
        Step(
            "dns", True, f"{connect_host} -> {', '.join(sorted({str(a[4][0]) for a in addresses}))}"
        )
    )
    try:
        sock = socket.create_connection((connect_host, connect_port), timeout=timeout)
    except OSError as exc:
        raise _fail(
            "tcp",
            f"cannot connect to {connect_host}:{connect_port}: {exc}",
            "check the port, security groups / network ACLs (inbound from this host), "
            "and that the database is running",
        ) from None
    record(Step("tcp", True, f"connected to {connect_host}:{connect_port}"))

    # 6. TLS, 7. certificate
    ca_bundle = options.iam_ca_bundle or default_ca_bundle(endpoint)
    with sock:
        problem = missing_region_root(endpoint, ca_bundle)
        if problem and not options.iam_ca_bundle:
            raise _fail("certificate", problem, "sqlalchemy-rds-iam ca update")
        sock.settimeout(timeout)
        try:
            offered = _STARTTLS[spec.family](sock)
        except OSError as exc:
            raise _fail(
                "tls", f"TLS negotiation failed: {exc}", "is this the database port?"
            ) from None
        if not offered:
            raise _fail(
                "tls",
                "the server does not offer TLS; the token would travel in clear text",
                "enable TLS on the server (RDS always offers it: is this really RDS?)",
            )
        context = ssl_context(ca_bundle, options.iam_tls)
        try:
            with context.wrap_socket(sock, server_hostname=connect_host) as tls:
                version = tls.version()
        except ssl.SSLCertVerificationError as exc:
            raise _fail(
                "certificate",
                f"the server's certificate does not verify against {ca_bundle}: "
                f"{exc.verify_message}",
                "the default trust store follows the endpoint the token is signed for (RDS "
                "bundle of its partition; Amazon roots for RDS Proxy and DSQL; both for other "
                "names): behind a CNAME or tunnel give iam_host=<the AWS endpoint name>; else "
                "iam_ca_bundle=<the right PEM>, `sqlalchemy-rds-iam ca update`, or "
                "iam_tls=verify-ca when the tunnel's name is not in the certificate",
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise _fail(
                "tls", f"TLS handshake failed: {exc}", "check the server's TLS settings"
            ) from None
    record(
        Step(
            "tls", True, f"{version}, certificate verified ({options.iam_tls}) against {ca_bundle}"
        )
    )

    # 8. token, 9. login
    try:
        engine = _engine(url, spec.is_async)
        token = connector(engine).token()
    except ImportError as exc:
        raise _fail(
            "options",
            f"the driver is not installed: {exc}",
            f"pip install 'sqlalchemy-rds-iam[{spec.extra}]'",
        ) from None
    except RdsIamError as exc:
        raise _fail("token", str(exc), "see the message") from None
    record(
        Step(
            "token",
            True,
            f"signed for {url.username}@{host}:{port} in {region} ({len(token)} chars)",
        )
    )
    try:
        _login(engine, spec.is_async)
    except sa.exc.DBAPIError as exc:
        partition = endpoint.partition if endpoint else "aws"
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise _fail(
            "login",
            f"login refused: {reason}",
            LOGIN_CHECKLIST.format(
                user=url.username, region=region, partition=partition, host=host, port=port
            ),
        ) from None
    record(Step("login", True, f"logged in as {url.username} and ran SELECT 1"))
