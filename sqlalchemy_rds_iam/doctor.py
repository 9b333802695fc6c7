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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .doctor_login import login_checklist, step_login
from .doctor_network import Failed, State, step_certificate, step_dns, step_tcp, step_tls
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

__all__ = [
    "EXIT_CODES", "STEPS", "Failed", "State", "Step", "StepDef", "diagnose", "exit_code_of",
    "login_checklist", "step_options", "step_tcp", "step_tls",
]


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


# -- the token ------------------------------------------------------------------------------------


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


# -- the list, and the loop -----------------------------------------------------------------------


@dataclass(frozen=True)
class StepDef:
    """A step of the diagnosis: its name, its exit code, its function.

    ``errors`` are the classes the whole CLI exits with this step's code for (``--help`` says
    so with ``meaning``, what the code means; the docs' exit-code tables are made from both);
    ``early`` marks errors ``create_engine`` already raises (the options step reports them as
    this step's, with ``fix``; a fix of None is computed from the message,
    :func:`credentials_fix`).
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
    StepDef("dns", 5, step_dns, meaning="the hostname does not resolve"),
    StepDef("tcp", 6, step_tcp, meaning="nothing answers on the port"),
    StepDef("tls", 7, step_tls, meaning="the server does not offer TLS"),
    StepDef("certificate", 8, step_certificate, errors=(TrustStoreError,),
            meaning="no trust-store root for the endpoint", early=True,
            fix="sqlalchemy-rds-iam ca update, or iam_ca_bundle=<path>"),
    StepDef("token", 9, step_token, errors=(TokenError,),
            meaning="the token could not be signed"),
    StepDef("login", 10, step_login, meaning="the server refused the token"),
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
    return "; ".join(f"{s.exit_code} {s.meaning}" for s in STEPS if s.errors)


def exit_codes_text() -> str:
    """The exit code of each step, as ``--help`` spells it."""
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
