"""SQLAlchemy glue: the ``rds_iam`` engine plugin, ``attach()``, and the ``do_connect`` listener.

The connect path (docs/architecture.md) starts here, below the package's public names.
:class:`RdsIamPlugin` (with its parsed options) and :func:`attach` read the engine's connect
arguments once (:func:`connect_arguments`) and install an :class:`IamConnector`: it resolves
the engine's :class:`~sqlalchemy_rds_iam.target.Target` and credential source and checks
those arguments at once. For every new physical connection it hands the login to its
refusal policy (``refusals``); each attempt has the target check the final arguments
(verified TLS over TCP, or :class:`InsecureConnectionError`), sets a valid token as the
password and makes the connection itself, returning it to SQLAlchemy. So what was checked
is exactly what the driver receives: a ``do_connect`` listener registered after ours never
runs, one registered before ours runs first and is checked. Nothing is frozen into the URL,
``connect_args`` or a pool ``creator``.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, CreateEnginePlugin, Dialect, Engine

from .credentials import CredentialSource, source_for
from .credentials.base import region_for
from .drivers import driver_installed
from .errors import ConfigurationError
from .options import (
    KEYWORD_ONLY_NAMES,
    OPTION_NAMES,
    Options,
    is_ours,
    parse_options,
    unknown_options_error,
)
from .target import Target, connect_arguments, resolve_target, without_options
from .tokens import SignedToken, TokenCache, TokenKey, sign_token

if TYPE_CHECKING:
    import sys

    from sqlalchemy.ext.asyncio import AsyncEngine

    from .globaldb import GlobalWriterRegion
    from .options import AttachOptions
    from .refusals import Refusals, Signed

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["IamConnector", "RdsIamPlugin", "attach", "connector"]

logger = logging.getLogger("sqlalchemy_rds_iam")

_ATTACHED: weakref.WeakKeyDictionary[Engine, IamConnector] = weakref.WeakKeyDictionary()


class IamConnector:
    """The ``do_connect`` listener of one engine: token, TLS defaults, refusal of plain text.

    Holds the engine's :class:`~sqlalchemy_rds_iam.target.Target` (:attr:`target`), its
    credentials (:attr:`source`), its token cache (:attr:`cache`) and its refusal policy
    (:attr:`refusals`).
    """

    def __init__(
        self,
        url: URL,
        dialect: Dialect,
        options: Options,
        *,
        engine: Engine | None = None,
        source: CredentialSource | None = None,
        cache: TokenCache | None = None,
    ) -> None:
        cargs, cparams = connect_arguments(url, dialect, engine)
        self.target: Target = resolve_target(url, dialect, options)
        target = self.target
        self.source = source if source is not None else source_for(options, target.region)
        # Sources without the (optional) hint never veto a cached token.
        self._hint: Callable[[], str | None] = getattr(
            self.source, "access_key_hint", _no_hint
        )
        self.cache = cache if cache is not None else TokenCache()
        self._url, self._options = url, options
        self._refusals: Refusals | None = None
        self._key: TokenKey | None = None
        self._skipped: set[int] = set()
        self._listeners_seen = -1  # how many do_connect listeners the last check saw
        self._last_signing: tuple[float, str] | None = None
        """(when, access key id) of the last signing, for the note: the token is not kept."""
        self.writer_region: GlobalWriterRegion | None = None
        """For a global writer endpoint without ``aws_region``: DescribeGlobalClusters."""
        if target.endpoint is not None and target.endpoint.kind == "global" and not target.region:
            from .globaldb import GlobalWriterRegion  # global writer endpoints only

            self.writer_region = GlobalWriterRegion(target.host, self.source)
        # Refuse an unverified setup now, at create_engine/attach, not at first connect.
        target.check(cparams, cargs)

    def __repr__(self) -> str:
        # getattr: a constructor that raised leaves a half-built object for debuggers to show
        t = getattr(self, "target", None)
        return f"<IamConnector {t.user}@{t.host}:{t.port} region={t.region}>" if t else \
            "<IamConnector ?@?:? region=None>"

    # The documented shortcuts to the target's fields (read-only; the target is the record).
    @property
    def user(self) -> str:
        return self.target.user

    @property
    def host(self) -> str:
        return self.target.host

    @property
    def port(self) -> int:
        return self.target.port

    @property
    def region(self) -> str | None:
        return self.target.region

    @property
    def ca_bundle(self) -> str:
        return self.target.ca_bundle

    @property
    def tls_mode(self) -> str:
        return self.target.tls_mode

    @property
    def refusals(self) -> Refusals:
        """The refusal policy (``refusals``), loaded at the first failed login: a successful
        connect never imports it."""
        if self._refusals is None:
            from .refusals import Refusals

            self._refusals = Refusals(self.target, self._url, self._options)
        return self._refusals

    def key(self) -> TokenKey:
        """The token key; a region the target does not name is resolved on first use."""
        if self._key is None:
            self._key = self.target.key(self._configured_region)
        return self._key

    def _configured_region(self) -> str:
        if self.writer_region is not None:
            return self.writer_region()
        return region_for(self.target.host, self.source)

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
        if self.target.spec.is_async:
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
        if getattr(original, "__notes__", None):  # only refusals (loaded by then) adds ours
            from .refusals import carry_notes

            carry_notes(original, getattr(context, "sqlalchemy_exception", None))

    def connect_once(
        self, dialect: Dialect, cargs: Sequence[Any], cparams: dict[str, Any],
        token: str | None = None,
    ) -> Any:
        """Check these arguments, add a token, connect with exactly them; one attempt.

        The token leaves ``cparams`` again once the driver has it (SQLAlchemy 2.0 keeps
        that dict for the engine's lifetime), and the driver connection's own copy is
        overwritten where the row knows how (``DriverSpec.scrub``).
        """
        spec = self.target.spec
        self.target.check(cparams, cargs)
        key = spec.password_key
        cparams[key] = token if token is not None else self.token()
        try:
            connection = spec.connect(dialect, cargs, cparams)
        finally:
            cparams.pop(key, None)
        spec.scrub(getattr(connection, "_connection", connection))
        return connection

    def connect(self, dialect: Dialect, cargs: Sequence[Any], cparams: dict[str, Any]) -> Any:
        """:meth:`connect_once`; if it fails, made again where a refused login may pass, and
        a refusal explained, as :attr:`refusals` decides (``refusals.Refusals.after``)."""
        cached = self.cache.peek(self._key, self._hint()) if self._key is not None else None
        try:
            return self.connect_once(dialect, cargs, cparams, cached)
        except Exception as exc:
            refused = exc  # handled below, outside this block: no retry's error chains to it
        return self.refusals.after(
            refused, lambda token: self.connect_once(dialect, cargs, cparams, token), cached, self
        )

    def refused(self) -> None:
        """The server refused the token: drop it, and a global writer's region (the primary
        may have switched)."""
        if self._key is not None:
            self.cache.invalidate(self._key)
        if self.writer_region is not None:
            self.writer_region.forget()
            self._key = None

    def signed(self) -> Signed:
        """The last signing, for the refusal note."""
        from .refusals import Signed

        signed_at, access_key = self._last_signing or (None, "unknown")
        age = f"{self.cache.clock() - signed_at:.0f} s" if signed_at is not None else "unknown"
        region = self._key.region if self._key else self.target.region or "unknown"
        return Signed(region, access_key, age, self.source.describe())

    def doctor_command(self) -> str:
        """The ``sqlalchemy-rds-iam doctor '<url>'`` line for this engine (no secrets)."""
        return self.refusals.doctor_command()

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
            from .scrub import scrub_exception  # a failed connect's path only

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


#: ``snapshot.INIT_TYPE_VARIABLE`` and ``SNAP_START``, here too so that a process no snapshot
#: can follow never loads ``snapshot`` (``tests/unit/test_snapshot.py`` holds them equal).
_INIT_TYPE_VARIABLE, _SNAP_START = "AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start"
_SNAPSHOT_MODULE = __package__ + ".snapshot"


def _serve_snapshots(engine: Engine, connector: IamConnector) -> None:
    """Put ``engine`` under the snapshot hooks where a snapshot may follow: in a SnapStart
    init (the only init Lambda snapshots), or once ``snapshot`` is loaded. Elsewhere the
    package's ``before_snapshot()``/``after_restore()`` put the engines there first."""
    if os.environ.get(_INIT_TYPE_VARIABLE) == _SNAP_START or _SNAPSHOT_MODULE in sys.modules:
        from . import snapshot

        snapshot.serve(engine, connector)  # SnapStart hooks; its init's one-time work


def _install(engine: Engine, options: Options) -> IamConnector:
    """The listener for ``engine`` (the plugin's and ``attach()``'s one way in), installed."""
    connector = IamConnector(engine.url, engine.dialect, options, engine=engine)
    if engine in _ATTACHED:
        raise ConfigurationError("this engine already has IAM authentication attached")
    event.listen(engine, "do_connect", connector)
    event.listen(engine, "handle_error", connector.on_error)
    _ATTACHED[engine] = connector
    _serve_snapshots(engine, connector)
    return connector


def attach(engine: Engine | AsyncEngine, **options: Unpack[AttachOptions]) -> IamConnector:
    """Give an existing engine IAM authentication; returns the listener it installed.

    ``engine`` is an :class:`~sqlalchemy.engine.Engine` or an ``AsyncEngine`` (its
    ``sync_engine`` is used). Keywords are the plugin options, plus ``boto3_session``.
    The engine's ``connect_args`` are checked here, like its URL.
    """
    sync_engine = getattr(engine, "sync_engine", engine)
    if not isinstance(sync_engine, Engine):
        raise ConfigurationError(f"attach() needs an Engine or AsyncEngine, got {type(engine)!r}")
    return _install(sync_engine, parse_options(keywords=dict(options)))


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
        is_async = bool(kwargs.get("_is_async", False))
        if "module" not in kwargs and not driver_installed(url, is_async):
            from .missing import require_driver  # SQLAlchemy imports it next: say what is wrong

            require_driver(url, is_async=is_async)

    def update_url(self, url: URL) -> URL:
        return without_options(url)

    def engine_created(self, engine: Engine) -> None:
        _install(engine, self.options)
