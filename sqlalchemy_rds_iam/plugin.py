"""SQLAlchemy glue: the ``rds_iam`` engine plugin, ``attach()``, and the ``do_connect`` listener.

The listener runs for every new physical connection: it fills TLS defaults, classifies the
final arguments (verified TLS over TCP, or :class:`InsecureConnectionError`), sets a
currently valid token as the password and makes the connection itself, returning it to
SQLAlchemy. So what was checked is exactly what the driver receives: a ``do_connect``
listener registered after ours never runs, one registered before ours (``insert=True``,
or added before the plugin) runs first and is checked. Nothing is frozen into the URL,
``connect_args`` or a pool ``creator``.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, CreateEnginePlugin, Dialect, Engine

from . import snapshot
from .backoff import RetryPolicy, pause, retrying, worth_retrying
from .credentials import CredentialSource, source_for
from .drivers import DriverSpec, place
from .errors import ConfigurationError, InsecureConnectionError, RegionError
from .missing import require_driver
from .options import (
    KEYWORD_ONLY_NAMES,
    OPTION_NAMES,
    Options,
    is_ours,
    parse_options,
    unknown_options_error,
)
from .refusals import add_note, login_refused
from .scrub import mask_query, scrub_exception
from .target import Target, check_chain_only, resolve_target, without_options
from .tls import ssl_context
from .tokens import SignedToken, TokenCache, TokenKey, sign_token
from .transport import Transport

if TYPE_CHECKING:
    import sys

    from sqlalchemy.ext.asyncio import AsyncEngine

    from .globaldb import GlobalWriterRegion
    from .options import AttachOptions

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["IamConnector", "RdsIamPlugin", "attach", "connector"]

logger = logging.getLogger("sqlalchemy_rds_iam")

_ATTACHED: weakref.WeakKeyDictionary[Engine, IamConnector] = weakref.WeakKeyDictionary()


class IamConnector:
    """The ``do_connect`` listener of one engine: token, TLS defaults, refusal of plain text."""

    def __init__(
        self,
        url: URL,
        dialect: Dialect,
        options: Options,
        *,
        connect_args: Mapping[str, Any] | None = None,
        cargs: Sequence[Any] = (),
        source: CredentialSource | None = None,
        cache: TokenCache | None = None,
    ) -> None:
        self.target: Target = resolve_target(url, dialect, options)
        target = self.target
        self.spec: DriverSpec = target.spec
        self.host, self.port, self.user = target.host, target.port, target.user
        self.region = target.region
        self.shape = target.shape
        self.ca_bundle = target.ca_bundle
        self.tls_mode = target.tls_mode
        self.source = source if source is not None else source_for(options, self.region)
        # Sources without the (optional) hint never veto a cached token.
        self._hint: Callable[[], str | None] = getattr(
            self.source, "access_key_hint", _no_hint
        )
        self.cache = cache if cache is not None else TokenCache()
        self._key: TokenKey | None = None
        self._skipped: set[int] = set()
        self._listeners_seen = -1  # how many do_connect listeners the last check saw
        self._url, self._options = url, options
        self._last_signing: tuple[float, str] | None = None
        """(when, access key id) of the last signing, for the note: the token is not kept."""
        self.retry = RetryPolicy.from_options(options.iam_connect_retries,
                                              options.iam_retry_budget)
        """Backoff for a refused fresh token (the IAM throttle); see ``backoff.py``."""
        self.writer_region: GlobalWriterRegion | None = None
        """For a global writer endpoint without ``aws_region``: DescribeGlobalClusters."""
        if target.endpoint is not None and target.endpoint.kind == "global" and not self.region:
            from .globaldb import GlobalWriterRegion  # global writer endpoints only

            self.writer_region = GlobalWriterRegion(self.host, self.source)
        # Refuse an unverified setup now, at create_engine/attach, not at first connect.
        preview = dict(dialect.create_connect_args(url)[1])
        preview.update(connect_args or {})
        self._prepare(preview, list(cargs))

    def __repr__(self) -> str:
        # getattr: a constructor that raised leaves a half-built object for debuggers to show
        user, host = getattr(self, "user", "?"), getattr(self, "host", "?")
        port, region = getattr(self, "port", "?"), getattr(self, "region", None)
        return f"<IamConnector {user}@{host}:{port} region={region}>"

    def _prepare(self, cparams: dict[str, Any], cargs: Sequence[Any] = ()) -> Transport:
        """Fill the driver's TLS defaults and switches, then classify the final arguments.

        Table-driven (``drivers.DRIVERS``); idempotent on the dict SQLAlchemy reuses.
        Raises :class:`InsecureConnectionError` unless the token would go over verified TLS.
        """
        place(cparams, self.target.address, self.target.user)  # dial what the token is for
        self.spec.prepare(cparams, self.ca_bundle, self.tls_mode)
        for name, value in self.spec.fixed.items():
            cparams.setdefault(name, value)
        if cargs:
            raise InsecureConnectionError(
                f"refusing to send an IAM token: positional connect arguments {len(cargs)} "
                "cannot be checked; give every driver argument as a keyword (URL or connect_args)"
            )
        transport = self.spec.classify(cargs, cparams).require_verified()
        if not transport.hostname_checked and not self._options.iam_ca_bundle \
                and self._default_roots(transport, cparams):
            # sslmode=verify-ca & co. with the default store
            check_chain_only(self.target, transport.chain_only_by or "verify-ca")
        return transport

    def _default_roots(self, transport: Transport, cparams: dict[str, Any]) -> bool:
        """Whether chain-only TLS would verify against the target's default store (a
        path to it, or the context the driver row built from it), not the user's own CA."""
        if transport.roots == self.ca_bundle:
            return True
        ours = ssl_context(self.ca_bundle, "verify-ca")
        return any(value is ours for value in cparams.values())

    def key(self) -> TokenKey:
        """The token key; the region may need the AWS configuration, read on first use."""
        if self._key is None:
            region = self.region or (self.writer_region() if self.writer_region else None) \
                or self.source.region()
            if not region:
                raise RegionError(
                    f"no AWS region for {self.host}: it is not an RDS hostname, so give "
                    "aws_region= (URL or attach()), or set AWS_REGION / a profile region"
                )
            self._key = TokenKey(self.host, self.port, self.user, region, *self.shape)
        return self._key

    def _sign(self) -> SignedToken:
        credentials = self.source.frozen()
        token = sign_token(self.key(), credentials)
        self._last_signing = (self.cache.clock(), credentials.access_key)
        return SignedToken(token, credentials.access_key, credentials.expiry)

    def _token_blocking(self) -> str:
        return self.cache.get(self.key(), self._sign, self._hint())

    def token(self) -> str:
        """A token valid now: from the cache when possible, else freshly signed.

        For async drivers a cache miss runs in a worker thread: loading credentials can
        mean network I/O (STS, IMDS, SSO) that must not stall the event loop.
        """
        if self._key is not None:
            cached = self.cache.peek(self._key, self._hint())
            if cached is not None:
                return cached
        if self.spec.is_async:
            from sqlalchemy.util.concurrency import in_greenlet

            if in_greenlet():  # inside an async engine's connect: keep the loop free
                import asyncio

                from sqlalchemy.util import await_only

                # Handed back in a list, not as the awaited value: SQLAlchemy's greenlet_spawn
                # keeps the last awaited value in a local that a failed connect's traceback shows.
                box: list[str] = []
                await_only(asyncio.to_thread(lambda: box.append(self._token_blocking())))
                return box.pop()
        return self._token_blocking()

    def forget(self) -> None:
        """Drop the cached tokens and the credentials resolved (``snapshot.py``: around a
        snapshot); the next connect fetches credentials and signs anew."""
        self.cache.clear()
        self._last_signing = None
        forget = getattr(self.source, "forget", None)
        if forget is not None:
            forget()

    def on_error(self, context: Any) -> None:
        """A connect that failed drops the cached token, so the next attempt signs anew.

        A token the server refused (clock skew, credentials revoked or rotated) would
        otherwise be offered again until it ages out of the cache.
        """
        if context.connection is None and self._key is not None:
            self.cache.invalidate(self._key)
        original = getattr(context, "original_exception", None)
        wrapper = getattr(context, "sqlalchemy_exception", None)
        if wrapper is not None:
            for note in getattr(original, "__notes__", None) or []:
                if note.startswith("sqlalchemy-rds-iam:"):
                    add_note(wrapper, note)

    def connect_once(
        self, dialect: Dialect, cargs: Sequence[Any], cparams: dict[str, Any],
        token: str | None = None,
    ) -> Any:
        """Check these arguments, add a token, connect with exactly them; one attempt.

        The token leaves ``cparams`` again once the driver has it (SQLAlchemy 2.0 keeps
        that dict for the engine's lifetime), and the driver connection's own copy is
        overwritten where the row knows how (``DriverSpec.scrub``).
        """
        self._prepare(cparams, cargs)
        key = self.spec.password_key
        cparams[key] = token if token is not None else self.token()
        try:
            connection = self.spec.connect(dialect, cargs, cparams)
        finally:
            cparams.pop(key, None)
        self.spec.scrub(getattr(connection, "_connection", connection))
        return connection

    def connect(self, dialect: Dialect, cargs: Sequence[Any], cparams: dict[str, Any]) -> Any:
        """:meth:`connect_once`, retried where a refused login may pass; refusals explained.

        A token from the cache may have been signed by credentials retired since (rotated
        keys, an ended session): it is dropped and the login retried with a freshly signed
        one. A refused fresh token may be the IAM throttle: it is retried with backoff
        (:attr:`retry`), reusing the token while the cache holds it. A refusal that surfaces
        gets a note (and a WARNING log line) saying what the token was signed for, how many
        attempts were made and which ``doctor`` command checks it.
        """
        cached = self.cache.peek(self._key, self._hint()) if self._key is not None else None
        attempts = 0

        def attempt(token: str | None = None) -> Any:
            nonlocal attempts
            attempts += 1
            return self.connect_once(dialect, cargs, cparams, token)

        def may_pass(exc: BaseException) -> bool:
            return worth_retrying(exc, self.spec.family)

        try:
            if cached is not None:
                try:
                    return attempt(cached)
                except Exception as exc:
                    if not may_pass(exc):
                        raise
                    logger.info("login with a cached IAM token refused for %s; signing a fresh "
                                "one", self._key)
                    self.cache.invalidate(self.key())
                    self._forget_writer_region()
            return retrying(self.retry, attempt, may_pass,
                            lambda delay: pause(delay, self.spec.is_async),
                            self._announce_retry)
        except Exception as exc:
            if login_refused(exc, self.spec.family):
                self._explain(exc, attempts=attempts, cached=cached is not None)
                self._forget_writer_region()
            raise

    def _forget_writer_region(self) -> None:
        """A refused login at a global writer endpoint: the primary may have switched."""
        if self.writer_region is not None:
            if self._key is not None:
                self.cache.invalidate(self._key)
            self.writer_region.forget()
            self._key = None

    def _announce_retry(self, number: int, delay: float) -> None:
        logger.info(
            "IAM login for %s refused with a fresh token (the IAM throttle, or a token the "
            "server rejects): attempt %d of at most %d in %.2f s", self._key, number,
            self.retry.retries + 1, delay,
        )

    def doctor_command(self) -> str:
        """The ``sqlalchemy-rds-iam doctor '<url>'`` line for this engine (no secrets)."""
        import shlex  # a refused login's note only: not on a successful connect's path

        url = self._url.set(password=None)
        query = {name: str(getattr(self._options, name)) for name in OPTION_NAMES
                 if getattr(self._options, name) not in (None, Options().iam_tls)}
        if self.region and "aws_region" not in query:
            query["aws_region"] = self.region
        url = url.update_query_dict({"plugin": "rds_iam", **query})
        url = url.set(query=mask_query(url.query))  # sslpassword=, aws_external_id=...
        return f"sqlalchemy-rds-iam doctor {shlex.quote(url.render_as_string(False))}"

    def _explain(self, exc: BaseException, *, attempts: int, cached: bool) -> None:
        key = self._key
        signed_at, access_key = self._last_signing or (None, "unknown")
        age = f"{self.cache.clock() - signed_at:.0f} s" if signed_at is not None else "unknown"
        fresh = attempts - 1 if cached else attempts
        steps = ["a cached token"] if cached else []
        if fresh:
            steps.append("a freshly signed one" + (f", tried {fresh} times" if fresh > 1 else ""))
        tried = (f" ({attempts} attempt{'s' if attempts > 1 else ''}: {', then '.join(steps)}; "
                 f"iam_connect_retries={self.retry.retries}, "
                 f"iam_retry_budget={self.retry.budget:g})")
        note = (
            f"sqlalchemy-rds-iam: the server refused the IAM token signed for user "
            f"{self.user!r} at {self.host}:{self.port}, region "
            f"{key.region if key else self.region or 'unknown'}, access key {access_key}, "
            f"token age {age}, credentials from {self.source.describe()}{tried}. "
            f"Check IAM auth on the instance, the user's rds_iam/AWSAuthenticationPlugin "
            f"grant, the rds-db:connect policy and the clock; run: {self.doctor_command()}"
        )
        if note not in (getattr(exc, "__notes__", None) or []):
            logger.warning("%s", note)
        add_note(exc, note)

    def __call__(
        self, dialect: Dialect, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> Any:
        """SQLAlchemy's ``do_connect``: returning the connection ends the listener chain.

        A failure leaves with its finished frames cleared (``scrub.scrub_exception``): this
        frame is the outermost of ours, so the token is in none of its locals.
        """
        self._warn_skipped_listeners(dialect)
        try:
            return self.connect(dialect, cargs, cparams)
        except BaseException as exc:
            scrub_exception(exc)
            raise

    def _warn_skipped_listeners(self, dialect: Dialect) -> None:
        """Say once per listener that a ``do_connect`` listener added after ours never runs.

        Runs on every connect, so the listeners are only listed when their number changed.
        """
        joined = dialect.dispatch.do_connect
        if len(joined) == self._listeners_seen:
            return
        self._listeners_seen = len(joined)
        listeners = list(joined)
        if self not in listeners:
            return
        for fn in listeners[listeners.index(self) + 1:]:
            if id(fn) not in self._skipped:
                self._skipped.add(id(fn))
                logger.warning(
                    "do_connect listener %s was registered after the IAM listener, which makes "
                    "the connection itself, so it does not run; register it before attach() "
                    "(or on the dialect class) to have it run first",
                    getattr(fn, "__qualname__", type(fn).__name__),
                )


def _no_hint() -> None:
    return None


def _install(engine: Engine, connector: IamConnector) -> None:
    if engine in _ATTACHED:
        raise ConfigurationError("this engine already has IAM authentication attached")
    event.listen(engine, "do_connect", connector)
    event.listen(engine, "handle_error", connector.on_error)
    _ATTACHED[engine] = connector
    snapshot.serve(engine, connector)  # SnapStart hooks; its init's one-time work


def engine_connect_arguments(engine: Engine) -> tuple[list[Any], dict[str, Any]]:
    """The ``(cargs, cparams)`` this engine hands its ``do_connect`` listeners.

    ``create_engine`` keeps them (``create_connect_args(url)`` merged with ``connect_args``)
    only in the closure of the pool's creator function; :func:`inspect.getclosurevars`
    reads them there. A pool built from ``creator=`` or ``pool=`` never fires
    ``do_connect``, so no token could ever be set: that is refused.
    """
    creator = getattr(engine.pool, "_creator", None)
    if not (callable(creator) and getattr(creator, "__module__", "") == "sqlalchemy.engine.create"
            and getattr(creator, "__name__", "") == "connect"):
        raise ConfigurationError(
            "this engine was created with creator= or pool=, whose connections bypass "
            "SQLAlchemy's do_connect event, so no token would be set; create the engine "
            "from a URL (with connect_args=) instead"
        )
    closure = inspect.getclosurevars(creator).nonlocals
    cparams = closure.get("cparams")
    cargs = closure.get("cargs_tup", closure.get("cargs", ()))
    if not isinstance(cparams, Mapping):  # an unknown SQLAlchemy: the URL, checked at connect
        return [], dict(engine.dialect.create_connect_args(engine.url)[1])
    return list(cargs), dict(cparams)


def attach(engine: Engine | AsyncEngine, **options: Unpack[AttachOptions]) -> IamConnector:
    """Give an existing engine IAM authentication; returns the listener it installed.

    ``engine`` is an :class:`~sqlalchemy.engine.Engine` or an ``AsyncEngine`` (its
    ``sync_engine`` is used). Keywords are the plugin options, plus ``boto3_session``.
    The engine's ``connect_args`` are checked here, like its URL.
    """
    sync_engine = getattr(engine, "sync_engine", engine)
    if not isinstance(sync_engine, Engine):
        raise ConfigurationError(f"attach() needs an Engine or AsyncEngine, got {type(engine)!r}")
    cargs, cparams = engine_connect_arguments(sync_engine)
    connector = IamConnector(sync_engine.url, sync_engine.dialect,
                             parse_options(keywords=dict(options)),
                             connect_args=cparams, cargs=cargs)
    _install(sync_engine, connector)
    return connector


def connector(engine: Engine | AsyncEngine) -> IamConnector:
    """The IAM listener installed on ``engine`` (by the URL plugin or ``attach()``)."""
    sync_engine = engine if isinstance(engine, Engine) else getattr(engine, "sync_engine", None)
    found = _ATTACHED.get(sync_engine) if isinstance(sync_engine, Engine) else None
    if found is None:
        raise ConfigurationError(
            "this engine has no IAM authentication: use ?plugin=rds_iam or attach()"
        )
    return found


class RdsIamPlugin(CreateEnginePlugin):
    """The `?plugin=rds_iam` URL option, registered as `rds_iam` in `sqlalchemy.plugins`."""

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        if "creator" in kwargs:
            raise ConfigurationError(
                "creator= bypasses SQLAlchemy's do_connect event, so no token would be set; "
                "drop creator= and pass driver arguments through the URL or connect_args="
            )
        unknown = [name for name in kwargs if is_ours(name)]
        unknown = [name for name in unknown if name not in OPTION_NAMES + KEYWORD_ONLY_NAMES]
        if unknown:  # before SQLAlchemy's bare TypeError, with the names we know
            raise unknown_options_error(unknown)
        keywords = {
            name: kwargs.pop(name) for name in OPTION_NAMES + KEYWORD_ONLY_NAMES if name in kwargs
        }
        self.options = parse_options(url.query, keywords)
        if "module" not in kwargs:  # SQLAlchemy imports the driver next: say what is missing
            require_driver(url, is_async=bool(kwargs.get("_is_async", False)))

    def update_url(self, url: URL) -> URL:
        return without_options(url)

    def engine_created(self, engine: Engine) -> None:
        cargs, cparams = engine_connect_arguments(engine)
        connector = IamConnector(
            engine.url, engine.dialect, self.options, connect_args=cparams, cargs=cargs
        )
        _install(engine, connector)
