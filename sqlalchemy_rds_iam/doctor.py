"""``sqlalchemy-rds-iam doctor URL``: find the first reason an IAM login fails, and say what to fix.

The diagnosis is a list of small steps (:data:`STEPS`) run in order by one loop, the way
botocore walks its credential providers. Each step either returns what it found or raises
:class:`Failed` with what to fix; the failing step's exit code tells scripts "no credentials"
from "server unreachable" from "login refused". A *fatal* failure stops the run; ``--whoami``
is advisory: its failure is reported and the remaining steps still run.

The options step builds the engine exactly as ``create_engine`` does (plugin, driver import,
every option check), so an option problem exits 2 before any network step. Servers answer a
failed IAM login with one opaque line ("PAM authentication failed", "Access denied ... (using
password: YES)"): the login step prints a checklist for that database family.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigurationError,
    CredentialsError,
    RdsIamError,
    RegionError,
    TokenError,
    TrustStoreError,
)

if TYPE_CHECKING:
    from .credentials import FrozenCredentials
    from .plugin import IamConnector
    from .target import Target

__all__ = ["EXIT_CODES", "STEPS", "Failed", "Step", "StepDef", "diagnose", "exit_code_of"]


@dataclass(frozen=True)
class Step:
    """One diagnosis step's result: what was checked, what was found, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = True
    """``False`` for an advisory step (``whoami``): its failure does not stop the run."""
    exit_code: int = 0
    """What the command exits with if this is the failure that counts (0 when ok)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Failed(Exception):
    """Raised by a step function: what went wrong and what to do about it."""

    def __init__(self, detail: str, fix: str, step: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix
        self.step = step  # the step whose check this is, when another step's run found it


@dataclass
class State:
    """What earlier steps found, for later ones (one per ``diagnose`` call)."""

    text: str
    timeout: float
    whoami: bool
    url: Any = None
    engine: Any = None
    connector: IamConnector | None = None
    region: str = ""
    credentials: FrozenCredentials | None = None
    sock: socket.socket | None = None

    @property
    def iam(self) -> IamConnector:
        assert self.connector is not None  # the options step set it
        return self.connector

    @property
    def target(self) -> Target:
        """What the engine connects to, as the plugin resolved it (the options step's)."""
        return self.iam.target


# -- options --------------------------------------------------------------------------------------


def _build_engine(text: str) -> Any:
    """The engine ``create_engine`` would build for this URL with the plugin, one connection."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from .target import plain_url

    url = plain_url(text)
    if url.get_dialect().is_async:
        from sqlalchemy.ext.asyncio import create_async_engine

        return create_async_engine(url, plugins=["rds_iam"], poolclass=NullPool)
    return sa.create_engine(url, plugins=["rds_iam"], poolclass=NullPool)


def _missing_driver_fix(text: str) -> str:
    import sqlalchemy as sa

    from .drivers import driver_for

    try:
        dialect = sa.make_url(text).get_dialect()
        spec = driver_for(dialect.name, dialect.driver, is_async=dialect.is_async)
    except Exception:  # the URL was already understood once; any doubt: generic advice
        return "install the driver named in the URL"
    return f"pip install 'sqlalchemy-rds-iam[{spec.extra}]'"


#: The fix when botocore's chain found no credentials at all: where they can come from.
NO_CREDENTIALS_FIX = (
    "configure AWS credentials, one of: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(and AWS_SESSION_TOKEN for temporary ones); AWS_PROFILE=<profile> or aws_profile=<profile> "
    "in the URL, set up with `aws configure` or `aws sso login`; aws_role_arn=<role> to assume "
    "a role; or run where a role supplies them (Lambda execution role, ECS task role, EC2 "
    "instance profile)"
)


def credentials_fix(message: str) -> str:
    """The fix for a :class:`CredentialsError`'s message: concrete, never "see the message".

    The library's messages end with their fix after the last "; " (``credentials._FIXES``);
    "no AWS credentials found" gets the list of places credentials come from.
    """
    if message.startswith("no AWS credentials found") or "NoCredentialsError" in message:
        return NO_CREDENTIALS_FIX
    head, sep, tail = message.rpartition("; ")
    return tail if sep and head else "fix the AWS configuration named above"


def _check_names(text: str) -> None:
    """The URL's driver and plugin names: each one SQLAlchemy can load, and the driver installed.

    ``create_engine`` would say "Can't load plugin" for a misspelt ``plugin=`` (which the
    plugin never sees) or a bare ModuleNotFoundError; here each gets a did-you-mean or the
    extra to install.
    """
    import sqlalchemy as sa
    from sqlalchemy.dialects import plugins

    from .missing import MISSPELT_PLUGIN_NAMES, close_names, driver_problem
    from .target import plain_url

    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError:
        return  # not a URL at all: create_engine's own words are the clearest
    names = url.query.get("plugin", ())
    for name in (names,) if isinstance(names, str) else names:
        if name == "rds_iam":
            continue
        try:
            if name in MISSPELT_PLUGIN_NAMES:  # loadable, only to refuse in create_engine
                raise sa.exc.NoSuchModuleError(name)
            plugins.load(name)
        except sa.exc.NoSuchModuleError:
            guesses = close_names(name, ["rds_iam"])
            raise Failed(
                f"SQLAlchemy has no plugin named {name!r}",
                "did you mean plugin=rds_iam?" if guesses else f"remove plugin={name}",
            ) from None
    problem = driver_problem(plain_url(text), is_async=False)
    if problem is not None:
        raise Failed(problem.detail, problem.fix)


def step_options(state: State) -> str:
    """Every check ``create_engine(url, plugins=["rds_iam"])`` runs, and no more."""
    import sqlalchemy as sa

    from .plugin import connector

    _check_names(state.text)
    try:
        state.engine = _build_engine(state.text)
    except ImportError as exc:
        fix = _missing_driver_fix(state.text)
        raise Failed(f"the driver is not installed: {exc}", fix) from None
    except (RdsIamError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        # create_engine also checks what later steps are about: report it as theirs
        step, known_fix = next(
            ((step, fix) for cls, step, fix in _LATER_STEP_ERRORS if isinstance(exc, cls)),
            (None, "fix the URL (see the option reference)"),
        )
        fix = known_fix if known_fix is not None else credentials_fix(str(exc))
        raise Failed(str(exc), fix, step) from None
    sync_engine = getattr(state.engine, "sync_engine", state.engine)
    state.url = sync_engine.url
    state.connector = connector(state.engine)
    target = state.target
    host, port = target.address
    return (
        f"{state.url.get_backend_name()}+{sync_engine.dialect.driver} as {target.user} to "
        f"{host}:{port}, signed for {target.host}:{target.port}, iam_tls={target.tls_mode}"
    )


# -- AWS side -------------------------------------------------------------------------------------


def step_region(state: State) -> str:
    iam = state.iam
    try:
        state.region = iam.key().region
    except CredentialsError as exc:  # a missing profile, a config file that does not parse
        raise Failed(str(exc), credentials_fix(str(exc)), "credentials") from None
    except RdsIamError as exc:
        raise Failed(
            str(exc), "add aws_region=<region> to the URL, set AWS_REGION, or fix the profile"
        ) from None
    target = state.target
    if iam.writer_region is not None:
        return f"{state.region}, the global database's writer, from DescribeGlobalClusters"
    if target.region_source == "configuration":
        return f"{state.region}, from the AWS configuration"
    if target.region_source == "hostname" and target.endpoint is not None:
        return f"{state.region}, from the hostname ({target.endpoint.kind} endpoint)"
    return f"{state.region}, from aws_region"


def step_credentials(state: State) -> str:
    iam = state.iam
    try:
        credentials = state.credentials = iam.source.frozen()
    except RdsIamError as exc:
        raise Failed(str(exc), credentials_fix(str(exc))) from None
    lifetime = "long-lived"
    if credentials.expiry is not None:
        left = credentials.expiry - time.time()
        lifetime = f"temporary, {left / 60:.0f} min left"
        if left <= 0:
            raise Failed("the credentials have expired", "refresh or re-login (aws sso login, ...)")
    session = "session token" if credentials.token else "no session token"
    return f"access key {credentials.access_key} ({lifetime}; {session}), {iam.source.describe()}"


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
    from .botocore_logs import scrubbed_logs

    with scrubbed_logs(credentials.secret_key, credentials.token):  # botocore logs the request
        return str(client.get_caller_identity()["Arn"])


def step_whoami(state: State) -> str:
    assert state.credentials is not None
    try:
        return _caller_arn(state.credentials, state.region, state.timeout)
    except Exception as exc:  # botocore's ClientError, EndpointConnectionError, ...
        raise Failed(
            f"STS GetCallerIdentity failed: {type(exc).__name__}: {exc}",
            "the credentials are invalid, expired or revoked, or STS is unreachable "
            "(in a VPC without internet access, add an STS interface endpoint); "
            "the remaining steps still ran",
        ) from None


# -- network --------------------------------------------------------------------------------------


def _address(state: State) -> tuple[str, int]:
    """Where the driver will connect: the URL's host and port (not iam_host/iam_port)."""
    return state.target.address


def step_dns(state: State) -> str:
    host, port = _address(state)
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid (IDNA) name
        raise Failed(
            f"cannot resolve {host}: {exc}",
            "check the endpoint name; inside a VPC, check the DNS resolver",
        ) from None
    return f"{host} -> {', '.join(sorted({str(a[4][0]) for a in addresses}))}"


def step_tcp(state: State) -> str:
    host, port = _address(state)
    try:
        state.sock = socket.create_connection((host, port), timeout=state.timeout)
    except OSError as exc:
        raise Failed(
            f"cannot connect to {host}:{port}: {exc}",
            "check the port, security groups / network ACLs (inbound from this host), "
            "and that the database is running",
        ) from None
    return f"connected to {host}:{port}"


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


def step_tls(state: State) -> str:
    """STARTTLS the database's way; the handshake is the certificate step's."""
    assert state.sock is not None
    state.sock.settimeout(state.timeout)
    try:
        offered = _STARTTLS[state.target.spec.family](state.sock)
    except (OSError, ValueError) as exc:
        raise Failed(f"TLS negotiation failed: {exc}", "is this the database port?") from None
    if not offered:
        raise Failed(
            "the server does not offer TLS; the token would travel in clear text",
            "enable TLS on the server (RDS always offers it: is this really RDS?)",
        )
    return "the server offers TLS"


def step_certificate(state: State) -> str:
    from .tls import ssl_context

    assert state.sock is not None
    target = state.target
    host, _ = _address(state)
    context = ssl_context(target.ca_bundle, target.tls_mode)
    try:
        with context.wrap_socket(state.sock, server_hostname=host) as tls:
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        raise Failed(
            f"the server's certificate does not verify against {target.ca_bundle}: "
            f"{exc.verify_message}",
            "the default trust store follows the endpoint the token is signed for (RDS "
            "bundle of its partition; Amazon roots for RDS Proxy and DSQL; both for other "
            "names): behind a CNAME or tunnel give iam_host=<the AWS endpoint name>; else "
            "iam_ca_bundle=<the right PEM>, `sqlalchemy-rds-iam ca update`, or "
            "iam_tls=verify-ca when the tunnel's name is not in the certificate",
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise Failed(f"TLS handshake failed: {exc}", "check the server's TLS settings") from None
    return f"{version}, certificate verified ({target.tls_mode}) against {target.ca_bundle}"


# -- the login ------------------------------------------------------------------------------------


def step_token(state: State) -> str:
    iam = state.iam
    try:
        token = iam.token()
    except CredentialsError as exc:  # a refresh that failed between the two steps
        raise Failed(str(exc), credentials_fix(str(exc)), "credentials") from None
    except RdsIamError as exc:
        raise Failed(
            str(exc), "check the region and the credentials shown above; if it persists, "
            "please report it"
        ) from None
    target = state.target
    return (
        f"signed for {target.user}@{target.host}:{target.port} in {state.region} "
        f"({len(token)} chars)"
    )


def _login(engine: Any) -> None:
    """Log in once and run ``SELECT 1``; driver errors propagate as SQLAlchemy's DBAPIError.

    The listener's refused-login WARNING is held back meanwhile: this step reports the
    refusal itself, with its checklist, and the same words twice would only be noise.
    """
    quiet = logging.Filter("nothing")  # passes only records of a logger named "nothing"
    library_logger = logging.getLogger("sqlalchemy_rds_iam")
    library_logger.addFilter(quiet)
    try:
        _login_once(engine)
    finally:
        library_logger.removeFilter(quiet)


def _login_once(engine: Any) -> None:
    if not hasattr(engine, "sync_engine"):
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


#: Names RDS uses for master users, and the usual ones: never advise making them IAM users
#: (on RDS PostgreSQL, ``GRANT rds_iam`` turns off the user's password login).
MASTER_USER_NAMES = frozenset({"postgres", "admin", "root", "rdsadmin", "master"})

_CREATE_IAM_USER = {
    "postgresql": "CREATE USER {user}; GRANT rds_iam TO {user};",
    "mysql": "CREATE USER {user} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;",
}
_CREATE_SEPARATE_USER = {
    "postgresql": "CREATE USER iam_app; GRANT rds_iam TO iam_app;",
    "mysql": "CREATE USER iam_app IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;",
}


#: The server's words -> what they point to, and the checklist's order for it. PostgreSQL
#: tries a password for a user outside ``rds_iam`` ("password authentication failed"), and
#: runs the IAM check for a member ("PAM authentication failed"); MySQL's "Access denied"
#: says neither, so it keeps the default order.
_CAUSES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "password authentication failed",
        "the server tried a password, not IAM: the user is not an IAM user on this server",
        ("user", "enabled", "policy", "region", "clock", "address"),
    ),
    (
        "PAM authentication failed",
        "the server's IAM check refused the token (the user is an IAM user)",
        ("policy", "region", "clock", "address", "enabled", "user"),
    ),
)
_DEFAULT_ORDER = ("enabled", "user", "policy", "region", "clock", "address")


def login_checklist(
    family: str, user: str, host: str, port: int, region: str, partition: str, reason: str = ""
) -> str:
    """What to check when the server refused the token, led by what ``reason`` points to.

    ``reason`` is the server's message; its words pick the order (:data:`_CAUSES`).
    """
    if user.lower() in MASTER_USER_NAMES:
        user_item = (
            f"`{user}` looks like the master user: do not make it an IAM user (keep its "
            f"password as the way in); connect as a separate IAM user instead, e.g. "
            f"`{_CREATE_SEPARATE_USER[family]}`"
        )
    else:
        user_item = (
            f"The database user exists and is an IAM user (a separate user, not the master "
            f"user): `{_CREATE_IAM_USER[family].format(user=user)}`"
        )
    items = {
        "enabled": "IAM database authentication is enabled on the instance/cluster "
        "(modify-db-instance/-cluster --enable-iam-database-authentication).",
        "user": f"{user_item}.",
        "policy": "The caller's IAM policy allows rds-db:connect on "
        f"arn:{partition}:rds-db:{region}:<account>:dbuser:<DbiResourceId>/{user} (the "
        "cluster's or instance's resource id, db-/cluster-..., not its name; for RDS Proxy "
        "the proxy's prx- id).",
        "region": f"The token's region ({region}) is the database's region.",
        "clock": "This machine's clock is right (tokens are valid 15 minutes from signing) and "
        "the credentials (the access key shown above) are current, not expired or rotated.",
        "address": f"The host and port signed ({host}:{port}) are the ones the server expects: "
        "set iam_host/iam_port when connecting through a tunnel or a load balancer.",
    }
    lowered = reason.lower()
    cause, order = next(
        ((why, order) for words, why, order in _CAUSES if words.lower() in lowered),
        ("", _DEFAULT_ORDER),
    )
    lines = [f"the server refused the token{'; ' + cause if cause else ''}. Check, in this order:"]
    lines += [f"  {n}. {items[key]}" for n, key in enumerate(order, 1)]
    return "\n".join(lines)


def step_login(state: State) -> str:
    import sqlalchemy as sa

    target = state.target
    try:
        _login(state.engine)
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise Failed(
            f"login refused: {reason}",
            login_checklist(
                target.spec.family,
                target.user,
                target.host,
                target.port,
                state.region,
                target.partition,
                reason,
            ),
        ) from None
    return f"logged in as {target.user} and ran SELECT 1"


# -- the list, and the loop -----------------------------------------------------------------------


@dataclass(frozen=True)
class StepDef:
    """A step of the diagnosis: its name, its exit code, its function.

    ``errors`` are the classes the whole CLI exits with this step's code for, ``meaning`` says
    so in ``--help``; ``early`` marks errors ``create_engine`` already raises (the options
    step reports them as this step's, with ``fix``; a fix of None is computed from the
    message, :func:`credentials_fix`).
    """

    name: str
    exit_code: int
    run: Callable[[State], str]
    fatal: bool = True
    when: Callable[[State], bool] = lambda state: True
    errors: tuple[type[RdsIamError], ...] = ()
    meaning: str = ""
    early: bool = False
    fix: str | None = None


#: The diagnosis, in order, and the one table of exit codes: the CLI's codes per error
#: class, ``--help`` and the docs' tables come from here.
STEPS: tuple[StepDef, ...] = (
    StepDef("options", 2, step_options, errors=(ConfigurationError,),
            meaning="bad options or usage"),
    StepDef("region", 3, step_region, errors=(RegionError,),
            meaning="no region, or a wrong one", early=True,
            fix="fix or add aws_region=<region> (the hostname's, if it has one)"),
    StepDef("credentials", 4, step_credentials, errors=(CredentialsError,),
            meaning="no usable AWS credentials", early=True),
    StepDef("whoami", 4, step_whoami, fatal=False, when=lambda state: state.whoami),
    StepDef("dns", 5, step_dns),
    StepDef("tcp", 6, step_tcp),
    StepDef("tls", 7, step_tls),
    StepDef("certificate", 8, step_certificate, errors=(TrustStoreError,),
            meaning="no trust-store root for the endpoint", early=True,
            fix="sqlalchemy-rds-iam ca update, or iam_ca_bundle=<path>"),
    StepDef("token", 9, step_token, errors=(TokenError,),
            meaning="the token could not be signed"),
    StepDef("login", 10, step_login),
)

#: Exit code per step name (0: every step passed; 1: an unexpected error).
EXIT_CODES = {step.name: step.exit_code for step in STEPS}

#: Exit code when a step raised something no step expects (a bug: please report it).
UNEXPECTED_EXIT_CODE = 1

#: Errors ``create_engine`` raises for what a later step checks: (class, step, fix).
_LATER_STEP_ERRORS: tuple[tuple[type[RdsIamError], str, str | None], ...] = tuple(
    (cls, step.name, step.fix) for step in STEPS if step.early for cls in step.errors
)


def _error_exit_codes() -> tuple[tuple[type[RdsIamError], int], ...]:
    # Most specific class first (RegionError before ConfigurationError), steps' order otherwise.
    pairs = [(cls, step.exit_code) for step in STEPS for cls in step.errors]
    pairs.sort(key=lambda pair: -len(pair[0].__mro__))
    return (*pairs, (RdsIamError, UNEXPECTED_EXIT_CODE))


#: Exit code per error class for every command, most specific first; any other
#: :class:`~.errors.RdsIamError` exits 1.
ERROR_EXIT_CODES = _error_exit_codes()


def error_codes_text() -> str:
    """What each error exit code means, as ``--help`` spells it."""
    return "; ".join(f"{s.exit_code} {s.meaning}" for s in STEPS if s.meaning)


def exit_codes_text() -> str:
    """The exit-code list as the help and the README spell it."""
    return ", ".join(
        f"{s.name} {s.exit_code}" + ("" if s.fatal else " (advisory: the run goes on)")
        for s in STEPS
    )


def exit_code_of(steps: list[Step]) -> int:
    """The first fatal failure's code; else an advisory failure's; else 0."""
    failed = sorted((s for s in steps if not s.ok), key=lambda s: not s.fatal)
    return failed[0].exit_code if failed else 0


def diagnose(
    url: str,
    *,
    timeout: float = 5.0,
    on_step: Callable[[Step], None] | None = None,
    whoami: bool = False,
) -> list[Step]:
    """Run :data:`STEPS` for ``url`` until a fatal step fails; returns the steps that ran."""
    state = State(url, timeout, whoami)
    steps: list[Step] = []
    try:
        for step in STEPS:
            if not step.when(state):
                continue
            try:
                result = Step(step.name, True, step.run(state), fatal=step.fatal)
            except Failed as failed:
                name = failed.step or step.name
                result = Step(name, False, failed.detail, failed.fix, step.fatal, EXIT_CODES[name])
            except Exception as exc:  # a bug, not a diagnosis: still one line, still a report
                result = Step(
                    step.name,
                    False,
                    f"unexpected error: {type(exc).__name__}: {exc}",
                    "please report this as a bug of sqlalchemy-rds-iam",
                    exit_code=UNEXPECTED_EXIT_CODE,
                )
            steps.append(result)
            if on_step:
                on_step(result)
            if not result.ok and result.fatal:
                break
    finally:
        if state.sock is not None:
            state.sock.close()
    return steps
