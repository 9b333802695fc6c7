"""What one engine connects to, resolved once: :class:`Target` and :func:`resolve_target`.

On the connect path (docs/architecture.md) below the listener (``plugin``) and its refusal
policy (``refusals``), above tokens, credentials, options and the driver rows. The user, the
host and port a token is signed for, the region (unless only the AWS configuration knows
it), the endpoint, the trust store, the TLS mode, the driver row and the kind of token are
decided here, once, and read from the :class:`Target` by the plugin, the CLI and every
``doctor`` step (cloud-sql's ``ConnectionInfo``). Every check that can fail without the
network runs here, at ``create_engine``/``attach``; for each connection,
:meth:`Target.check` makes the driver's final arguments dial this target over verified TLS,
and :meth:`Target.key` is the :class:`~sqlalchemy_rds_iam.tokens.TokenKey` its tokens are
cached and signed under.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .cabundle import COMBINED, bundle_path, missing_region_root, trust_store_for
from .drivers import DriverSpec, driver_for, place
from .endpoints import Endpoint, parse_hostname
from .errors import ConfigurationError, InsecureConnectionError, RegionError, TrustStoreError
from .options import OPTION_NAMES, Options
from .tls import ssl_context
from .tokens import TokenKey, token_shape

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Dialect, Engine

    from .transport import Transport

__all__ = [
    "Target", "check_chain_only", "check_host_name", "connect_arguments", "plain_url",
    "resolve_target", "without_options",
]

logger = logging.getLogger("sqlalchemy_rds_iam")

#: The query keys that only select the plugin; the CLI and ``doctor`` add it themselves.
_PLUGIN_KEYS = ("plugin", "plugins")


class Target:
    """The database one engine logs in to, as the token and the TLS check see it.

    Immutable, compared by value; :meth:`replace` gives a changed copy. A plain slotted
    class: a named tuple costs every cold start ~0.2 ms to build, a frozen dataclass ~0.5 ms.
    """

    __slots__ = ("address", "ca_bundle", "endpoint", "host", "own_ca_bundle", "port", "region",
                 "shape", "spec", "tls_mode", "user")

    user: str
    host: str
    """The host the token is signed for: ``iam_host``, else the URL's."""
    port: int
    """The port the token is signed for: ``iam_port``, else the URL's, else the driver's."""
    address: tuple[str, int]
    """Where the driver connects: the URL's host and port (not ``iam_host``/``iam_port``)."""
    endpoint: Endpoint | None
    """What the signed host's name says (kind, region, partition); ``None`` for other names."""
    region: str | None
    """``aws_region``, else the hostname's; ``None``: the AWS configuration's, at first use
    (for a global writer endpoint: its writer's, from ``globaldb``)."""
    ca_bundle: str
    tls_mode: str
    spec: DriverSpec
    shape: tuple[str, str, int]
    """The kind of token: (service, action, lifetime), as in ``tokens.TokenKey``."""
    own_ca_bundle: bool
    """:attr:`ca_bundle` is the user's ``iam_ca_bundle``, not the endpoint's trust store."""

    def __init__(self, *, user: str, host: str, port: int, address: tuple[str, int],
                 endpoint: Endpoint | None, region: str | None, ca_bundle: str, tls_mode: str,
                 spec: DriverSpec, shape: tuple[str, str, int], own_ca_bundle: bool) -> None:
        values = dict(locals())
        del values["self"]
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Target is immutable: cannot assign {name!r}; use replace()")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if type(other) is Target else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def replace(self, **changes: Any) -> Target:
        """A copy with ``changes`` (e.g. another driver row in a test)."""
        return Target(**{**{name: getattr(self, name) for name in self.__slots__}, **changes})

    def __repr__(self) -> str:
        return (f"Target(user={self.user!r}, host={self.host!r}, port={self.port!r}, "
                f"address={self.address!r}, region={self.region!r}, tls_mode={self.tls_mode!r}, "
                f"spec={self.spec!r})")

    @property
    def partition(self) -> str:
        """The AWS partition of the endpoint (``aws`` for names that say none)."""
        return self.endpoint.partition if self.endpoint else "aws"

    @property
    def region_source(self) -> str:
        """Where :attr:`region` comes from: ``hostname``, ``aws_region`` or ``configuration``."""
        if self.region is None:
            return "configuration"
        if self.endpoint is not None and self.endpoint.region == self.region:
            return "hostname"
        return "aws_region"

    def key(self, configured: Callable[[], str]) -> TokenKey:
        """The key this target's tokens are signed and cached under: in :attr:`region`, else
        in ``configured()`` (asked only then: the AWS configuration's, or a global writer's)."""
        return TokenKey(self.host, self.port, self.user, self.region or configured(), *self.shape)

    def check(self, cparams: dict[str, Any], cargs: Sequence[Any] = ()) -> Transport:
        """Fill the driver's TLS defaults and switches, then classify the final arguments.

        Table-driven (``drivers.DRIVERS``); idempotent on the dict SQLAlchemy reuses.
        Raises :class:`InsecureConnectionError` unless the token would go over verified TLS
        to :attr:`address`, as :attr:`user`.
        """
        spec = self.spec
        place(cparams, self.address, self.user)  # dial what the token is for
        spec.prepare(cparams, self.ca_bundle, self.tls_mode)
        for name, value in spec.fixed.items():
            cparams.setdefault(name, value)
        if cargs:
            raise InsecureConnectionError(
                f"refusing to send an IAM token: positional connect arguments {len(cargs)} "
                "cannot be checked; give every driver argument as a keyword (URL or connect_args)"
            )
        transport = spec.classify(cargs, cparams).require_verified()
        if not transport.hostname_checked and not self.own_ca_bundle \
                and self._default_roots(transport, cparams):
            # sslmode=verify-ca & co. with the default store
            check_chain_only(self, transport.chain_only_by or "verify-ca")
        return transport

    def _default_roots(self, transport: Transport, cparams: dict[str, Any]) -> bool:
        """Whether chain-only TLS would verify against the default store (a path to it, or
        the context the driver row built from it), not the user's own CA."""
        if transport.roots == self.ca_bundle:
            return True
        ours = ssl_context(self.ca_bundle, "verify-ca")
        return any(value is ours for value in cparams.values())


def resolve_target(url: URL, dialect: Dialect, options: Options) -> Target:
    """The :class:`Target` of an engine with this URL, dialect and options; raises early.

    Raises :class:`ConfigurationError`, :class:`RegionError` or :class:`TrustStoreError`
    with what to fix. A CA bundle of your own that lacks the region's root only warns
    (it may be a tunnel's).
    """
    spec = driver_for(dialect.name, dialect.driver, is_async=getattr(dialect, "is_async", False))
    if not url.username:
        raise ConfigurationError(
            f"the URL has no username: IAM tokens are signed for a database user, "
            f"e.g. {dialect.name}+{dialect.driver}://iamuser@host/db"
        )
    if url.password:
        raise ConfigurationError(
            "the URL has a password: IAM authentication replaces it with a token; "
            "remove the password from the URL"
        )
    host = options.iam_host or url.host
    if not host:
        raise ConfigurationError("the URL has no host and no iam_host option is given")
    if options.iam_host:
        check_host_name(options.iam_host, "iam_host")
    endpoint = parse_hostname(host)
    _check_region(host, endpoint, options.aws_region)
    shape = token_shape(
        endpoint.kind if endpoint else None, url.username, options.iam_token_lifetime,
        family=spec.family,
    )
    if options.iam_ca_bundle:
        ca_bundle = options.iam_ca_bundle
    else:
        store = trust_store_for(endpoint)
        if options.iam_tls == "verify-ca":
            _check_chain_only(store, host)
        ca_bundle = bundle_path(store)
    problem = missing_region_root(endpoint, ca_bundle)
    if problem and options.iam_ca_bundle:
        logger.warning("%s", problem)  # your own bundle: maybe a tunnel's; try anyway
    elif problem:
        raise TrustStoreError(problem)
    return Target(
        user=url.username,
        host=host,
        port=options.iam_port or url.port or spec.default_port,
        address=(url.host or host, url.port or spec.default_port),
        endpoint=endpoint,
        region=options.aws_region or (endpoint.region if endpoint else None),
        ca_bundle=ca_bundle,
        tls_mode=options.iam_tls,
        spec=spec,
        shape=shape,
        own_ca_bundle=bool(options.iam_ca_bundle),
    )


#: Trust stores whose roots sign RDS database servers only: a chain to one proves an RDS server.
RDS_ONLY_STORES = frozenset({"rds-aws", "rds-aws-us-gov", "rds-aws-cn"})


def connect_arguments(
    url: URL, dialect: Dialect, engine: Engine | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """The ``(cargs, cparams)`` the driver is given, read once for the check at setup.

    An engine hands its ``do_connect`` listeners ``create_connect_args(url)`` merged with
    its ``connect_args``, which ``create_engine`` keeps only in the closure of the pool's
    creator function: :func:`inspect.getclosurevars` reads them there. A pool built from
    ``creator=`` or ``pool=`` never fires ``do_connect``, so no token could ever be set:
    that is refused. Without an engine (the CLI), or on a SQLAlchemy whose closure is not
    understood, the URL's own arguments (checked again at every connect anyway).
    """
    if engine is not None:
        creator = getattr(engine.pool, "_creator", None)
        if not (callable(creator)
                and getattr(creator, "__module__", "") == "sqlalchemy.engine.create"
                and getattr(creator, "__name__", "") == "connect"):
            raise ConfigurationError(
                "this engine was created with creator= or pool=, whose connections bypass "
                "SQLAlchemy's do_connect event, so no token would be set; create the engine "
                "from a URL (with connect_args=) instead"
            )
        closure = inspect.getclosurevars(creator).nonlocals
        cparams = closure.get("cparams")
        if isinstance(cparams, Mapping):
            return list(closure.get("cargs_tup", closure.get("cargs", ()))), dict(cparams)
    return [], dict(dialect.create_connect_args(url)[1])


def check_chain_only(target: Target, setting: str) -> None:
    """Raise unless chain-only verification against ``target``'s default store proves an RDS
    server (for ``sslmode=verify-ca`` and its equivalents, which use that store)."""
    _check_chain_only(trust_store_for(target.endpoint), target.host, setting)


def _check_chain_only(store: str, host: str, setting: str = "iam_tls=verify-ca") -> None:
    """``iam_tls=verify-ca`` only where the chain alone proves an RDS server."""
    if store in RDS_ONLY_STORES:
        return
    roots = "the Amazon public roots" if store != COMBINED else "the RDS and Amazon public roots"
    raise ConfigurationError(
        f"{setting} with {host}: its trust store ({store}) holds {roots} (Amazon Root "
        "CA 1-4, Starfield G2), which issue ACM certificates to anyone for their own domain, "
        "so a check of the chain alone would accept any such server. Verify the name (the "
        "default, iam_tls=verify-full); "
        "for an RDS instance or cluster behind a tunnel, an IP or a CNAME set iam_host=<its RDS "
        "endpoint name> (its RDS bundle proves an RDS server), or name your own CA file with "
        "iam_ca_bundle=<path>"
    )


#: What a host name or IP literal may hold; anything else (CR/LF, spaces, ``@``, ``/``,
#: ``:`` outside an IPv6 literal, ``%``...) could smuggle a second line or a URL part.
#: (A pattern string: ``re`` compiles and caches it at the first ``iam_host``, not at import.)
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"


def check_host_name(value: str, option: str) -> str:
    """``value`` if it is a DNS name or an IP literal (IPv6 with or without brackets)."""
    import ipaddress

    text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        if "%" not in text:  # a scope id (fe80::1%eth0) may hold any character
            ipaddress.ip_address(text)
            return value
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    if (value.isascii() and 0 < len(name) <= 253
            and all(re.fullmatch(_HOST_LABEL, label) for label in name.split("."))):
        return value
    raise ConfigurationError(
        f"option {option!r} must be a host name or an IP address, got {value!r} "
        "(letters, digits, '-', '.' only; no spaces, '@', '/', ':' or line breaks)"
    )


def _check_region(host: str, endpoint: Endpoint | None, region: str | None) -> None:
    """An ``aws_region`` that contradicts the hostname, or none where the name has none."""
    if endpoint is None:
        return
    # A global writer endpoint without aws_region: the plugin asks DescribeGlobalClusters.
    if endpoint.region and region and region != endpoint.region:
        raise RegionError(
            f"aws_region={region} but {host} is in {endpoint.region}: AWS refuses tokens "
            "signed for another region; drop aws_region (the hostname says it) or fix it"
        )


def plain_url(text: str) -> URL:
    """A URL string as an engine URL without ``plugin=``/``plugins=`` (the caller adds ours).

    Raises SQLAlchemy's ``ArgumentError`` for text that is not a URL.
    """
    import sqlalchemy as sa

    return sa.make_url(text).difference_update_query(_PLUGIN_KEYS)


def without_options(url: URL) -> URL:
    """The URL the driver sees: our options removed from the query (``update_url``)."""
    return url.difference_update_query([name for name in url.query if name in OPTION_NAMES])
