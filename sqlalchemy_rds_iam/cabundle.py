"""Which trust store verifies a server by default, where its file is, and refreshing them.

Each kind of endpoint chains to its own roots (see the README's trust table):

====================================================  ===================================
endpoint (the one the token is signed for)            trust store
====================================================  ===================================
RDS/Aurora instance, cluster, custom, Limitless, in P  ``rds-<P>``: P's RDS bundle
RDS Proxy, Aurora DSQL                                ``amazon-roots``: Amazon Trust Services
anything unrecognised (a CNAME, an IP, a tunnel)      ``rds-aws+amazon-roots``: both
====================================================  ===================================

A store's file, in order: the test seam (:data:`TEST_SEAM_ENV`, never set in production);
a copy fetched by ``sqlalchemy-rds-iam ca update`` into the user's cache directory; the
copy shipped in the wheel (``data/``, provenance in ``data/README.md``). A fetched copy is
only stored after it parses, so a bad download cannot break connections.

This module chooses; two others act, and are imported only when they do, so a connect with
the shipped bundles or ``iam_ca_bundle=`` loads neither: :mod:`.cabundle_store` checks and
writes the files of the user's private cache (a stored copy, the combined bundle), and
:mod:`.cabundle_fetch` downloads and vets what ``ca update`` (:func:`update`) stores.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .endpoints import Endpoint
from .errors import ConfigurationError, RdsIamError, TrustStoreError

__all__ = [
    "CACHE_DIR_ENV",
    "COMBINED",
    "SHIPPED_CA_BUNDLE",
    "SHIPPED_DIR",
    "SHIPPED_REGIONS",
    "TEST_SEAM_ENV",
    "TRUST_STORES",
    "UNSHIPPED_STORES",
    "TrustStore",
    "bundle_path",
    "default_ca_bundle",
    "missing_region_root",
    "rds_regions",
    "stored_bundle",
    "trust_store_for",
    "update",
]

logger = logging.getLogger("sqlalchemy_rds_iam")

#: Environment variable overriding the directory ``ca update`` writes to.
CACHE_DIR_ENV = "SQLALCHEMY_RDS_IAM_CACHE_DIR"
#: Test seam: a JSON object mapping trust-store names to PEM files that replace them.
TEST_SEAM_ENV = "SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES"
#: Where the wheel's bundles are.
SHIPPED_DIR = Path(__file__).with_name("data")
#: The shipped commercial RDS bundle (``rds-aws``).
SHIPPED_CA_BUNDLE = SHIPPED_DIR / "global-bundle.pem"


class TrustStore:
    """One set of roots AWS publishes, shipped in the package and refreshable from ``url``.

    A plain slotted class: a named tuple costs every cold start ~0.2 ms to build.
    """

    __slots__ = ("description", "filename", "name", "url")

    def __init__(self, name: str, filename: str, url: str, description: str) -> None:
        self.name = name
        self.filename = filename
        self.url = url
        self.description = description

    def __repr__(self) -> str:
        return f"TrustStore({self.name!r}, {self.filename!r})"


#: Every trust store, by name.
TRUST_STORES: Mapping[str, TrustStore] = {
    store.name: store
    for store in (
        TrustStore(
            "rds-aws",
            "global-bundle.pem",
            "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
            "Amazon RDS roots, commercial regions",
        ),
        TrustStore(
            "rds-aws-us-gov",
            "govcloud-bundle.pem",
            "https://truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem",
            "Amazon RDS roots, AWS GovCloud (US)",
        ),
        TrustStore(
            "rds-aws-cn",
            "china-bundle.pem",
            "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn/global/global-bundle.pem",
            "Amazon RDS roots, AWS China",
        ),
        TrustStore(
            "amazon-roots",
            "amazon-trust-roots.pem",
            "https://www.amazontrust.com/repository/",
            "Amazon Trust Services roots (RDS Proxy, Aurora DSQL)",
        ),
    )
}

#: Trust stores that do not ship (no public copy exists): used once ``ca update --from`` has
#: stored one from a mirror that holds it, otherwise an endpoint needing one is refused.
UNSHIPPED_STORES: Mapping[str, TrustStore] = {
    "rds-aws-eusc": TrustStore(
        "rds-aws-eusc",
        "eusc-bundle.pem",
        "",  # not publicly mirrored: only from ``ca update --from <mirror>``
        "Amazon RDS roots, AWS European Sovereign Cloud (not shipped)",
    ),
}
#: Partitions whose every endpoint kind (RDS Proxy too) needs that partition's own store.
_OWN_ROOTS_ONLY = {"aws-eusc": "rds-aws-eusc"}

#: The store for a name we cannot classify: either kind of certificate verifies.
COMBINED = "rds-aws+amazon-roots"
_COMBINED_PARTS = ("rds-aws", "amazon-roots")
_COMBINED_FILE = "global-and-amazon-roots.pem"

#: Endpoint kind -> trust store (RDS kinds depend on the partition, below).
_STORE_BY_KIND = {"proxy": "amazon-roots", "dsql": "amazon-roots"}


def trust_store_for(endpoint: Endpoint | None) -> str:
    """The name of the trust store that verifies ``endpoint`` (``None``: unrecognised).

    Raises :class:`ConfigurationError` for a partition whose RDS roots are not shipped
    (the ISO partitions, the European Sovereign Cloud unless ``ca update --from`` stored its
    bundle): there, ``iam_ca_bundle=`` must say which file to trust.
    """
    if endpoint is None:
        return COMBINED
    unshipped = _OWN_ROOTS_ONLY.get(endpoint.partition)
    if unshipped is not None:
        if stored_bundle(unshipped).is_file():
            return unshipped
        raise TrustStoreError(
            f"no RDS CA bundle ships for partition {endpoint.partition} (the AWS European "
            "Sovereign Cloud: its RDS trust store is not public), so the server cannot be "
            "verified; give iam_ca_bundle=<path to that partition's RDS bundle>, or store it "
            "once with `sqlalchemy-rds-iam ca update --from <mirror>` (a directory or https "
            f"URL holding {UNSHIPPED_STORES[unshipped].filename} besides the other bundles)"
        )
    name = _STORE_BY_KIND.get(endpoint.kind, f"rds-{endpoint.partition}")
    if name not in TRUST_STORES:
        raise ConfigurationError(
            f"no RDS CA bundle ships for partition {endpoint.partition}: download it from "
            "your partition's RDS documentation and give iam_ca_bundle=<path>"
        )
    return name


def _cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sqlalchemy-rds-iam"


def stored_bundle(name: str = "rds-aws") -> Path:
    """Where ``ca update`` stores trust store ``name`` (the file may not exist)."""
    return _cache_dir() / (TRUST_STORES.get(name) or UNSHIPPED_STORES[name]).filename


_seam_lock = threading.Lock()
_seam_warned: set[str] = set()


def _test_overrides() -> dict[str, str]:
    raw = os.environ.get(TEST_SEAM_ENV)
    if not raw:
        return {}
    import json

    try:
        overrides = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{TEST_SEAM_ENV} is not JSON: {exc}") from None
    if not isinstance(overrides, dict) or not all(
        isinstance(v, str) for v in overrides.values()
    ):
        raise ConfigurationError(f"{TEST_SEAM_ENV} must map trust-store names to file paths")
    unknown = sorted(set(overrides) - set(TRUST_STORES))
    if unknown:
        raise ConfigurationError(
            f"{TEST_SEAM_ENV} names unknown trust store(s) {', '.join(unknown)}; "
            f"known: {', '.join(TRUST_STORES)}"
        )
    with _seam_lock:
        if raw not in _seam_warned:
            _seam_warned.add(raw)
            logger.warning(
                "%s is set: trust store(s) %s replaced for testing; never set it in production",
                TEST_SEAM_ENV, ", ".join(sorted(overrides)),
            )
    return dict(overrides)


def _store_file(name: str, overrides: Mapping[str, str]) -> Path:
    if name in overrides:
        return Path(overrides[name])
    stored = stored_bundle(name)
    if not os.path.lexists(stored):  # an unshipped store (EUSC) is only ever a stored one
        return stored if name in UNSHIPPED_STORES else SHIPPED_DIR / TRUST_STORES[name].filename
    from .cabundle_store import not_private

    problem = not_private(stored.parent, directory=True) or not_private(stored)
    if problem:  # another account could have written it: it is no root of ours
        raise TrustStoreError(
            f"refusing the stored CA bundle {stored}: {problem}; remove it and run "
            "`sqlalchemy-rds-iam ca update` (or set " + CACHE_DIR_ENV + " to a private directory)"
        )
    return stored


def bundle_path(name: str) -> str:
    """The PEM file that trust store ``name`` (or :data:`COMBINED`) uses now."""
    overrides = _test_overrides()
    if name != COMBINED:
        return str(_store_file(name, overrides))
    parts = [_store_file(part, overrides) for part in _COMBINED_PARTS]
    if all(part.parent == SHIPPED_DIR for part in parts):
        return str(SHIPPED_DIR / _COMBINED_FILE)
    return str(_combined(tuple(str(p) for p in parts)))


def _combined(parts: tuple[str, ...]) -> Path:
    """A file holding ``parts`` one after the other, named by its content's hash, in the
    cache directory or, where that cannot be written (Lambda's read-only home), ``$TMPDIR``."""
    from .cabundle_store import keep, tmp_dir

    pem = b"".join(Path(p).read_bytes().rstrip(b"\n") + b"\n" for p in parts)
    problems = []
    for directory in (_cache_dir(), tmp_dir()):
        try:
            return keep(directory, pem, "combined")
        except (OSError, RdsIamError) as exc:
            problems.append(f"{directory}: {exc}")
    raise RdsIamError("cannot write the combined CA bundle to a private directory ("
                      + "; ".join(problems) + f"): set {CACHE_DIR_ENV} to a directory of yours")


def default_ca_bundle(endpoint: Endpoint | None = None) -> str:
    """The bundle used when ``iam_ca_bundle`` is not given, for this endpoint."""
    return bundle_path(trust_store_for(endpoint))


def ca_certificates(path: str) -> tuple[dict[str, Any], ...]:
    """The CA certificates of the PEM file at ``path``, parsed once per version of the file.

    Every check of a bundle at ``create_engine`` (readable PEM, holds CA certificates, has
    the region's root) shares the parse: each ``SSLContext`` costs a cold start 0.5-3 ms.
    Raises what loading raises: ``OSError``, ``ssl.SSLError``, ``ValueError``.
    """
    st = os.stat(path)
    return _ca_certificates(path, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _ca_certificates(path: str, _ino: int, _size: int, _mtime: int) -> tuple[dict[str, Any], ...]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=path)
    return tuple(context.get_ca_certs())


@functools.lru_cache(maxsize=16)
def _regions_in(path: str, mtime_ns: int) -> frozenset[str]:
    regions: set[str] = set()
    for cert in ca_certificates(path):
        subject: Any = cert.get("subject", ())
        for rdn in subject:
            for key, value in rdn:
                # "Amazon RDS us-east-1 Root CA RSA2048 G1", "Amazon RDS Beta us-east-1 ..."
                words = str(value).split() if key == "commonName" else []
                if words[:2] == ["Amazon", "RDS"] and "Root" in words:
                    regions.update(w for w in words[2:] if "-" in w)
    return frozenset(regions)


#: Regions with roots in the shipped RDS bundles (a test recomputes them from the files):
#: parsing 102 certificates takes ~45 ms, too long for every cold start's create_engine.
SHIPPED_REGIONS: Mapping[str, frozenset[str]] = {
    "global-bundle.pem": frozenset(
        f"{area}-{n}"
        for area, numbers in {
            "af-south": "1", "ap-east": "1", "ap-northeast": "123", "ap-south": "12",
            "ap-southeast": "123457", "ca-central": "1", "ca-west": "1", "eu-central": "12",
            "eu-north": "1", "eu-south": "12", "eu-west": "123", "il-central": "1",
            "me-central": "1", "me-south": "1", "mx-central": "1", "sa-east": "1",
            "us-east": "12", "us-west": "12",
        }.items()
        for n in numbers
    ),
    "govcloud-bundle.pem": frozenset({"us-gov-east-1", "us-gov-west-1"}),
    "china-bundle.pem": frozenset({"cn-north-1", "cn-northwest-1"}),
}
SHIPPED_REGIONS = {**SHIPPED_REGIONS, _COMBINED_FILE: SHIPPED_REGIONS["global-bundle.pem"]}


def rds_regions(path: str) -> frozenset[str]:
    """Regions that have an ``Amazon RDS <region> Root CA`` in the bundle at ``path``."""
    shipped = Path(path)
    if shipped.parent == SHIPPED_DIR and shipped.name in SHIPPED_REGIONS:
        return SHIPPED_REGIONS[shipped.name]
    return _regions_in(path, os.stat(path).st_mtime_ns)


def missing_region_root(endpoint: Endpoint | None, path: str) -> str | None:
    """Why ``path`` cannot verify an RDS ``endpoint`` (its region has no root), else ``None``."""
    if endpoint is None or endpoint.region is None or endpoint.kind in _STORE_BY_KIND:
        return None
    regions = rds_regions(path)
    if not regions or endpoint.region in regions:
        return None  # no RDS root at all: not an RDS bundle (a tunnel's CA, a test CA)
    return (
        f"the CA bundle {path} has no Amazon RDS root for {endpoint.region} (the shipped "
        "copy predates regions opened since mid-2025): run `sqlalchemy-rds-iam ca update` "
        "to fetch AWS's current bundles, or give iam_ca_bundle=<path>"
    )


def update(
    base: str | None = None, timeout: float = 20.0
) -> list[tuple[str, Path, int]]:
    """Refresh every trust store from AWS; returns (name, stored path, certificate count).

    ``base`` (a mirror, or a ``file://`` directory in tests) replaces AWS's URLs: it holds
    each store under the shipped file name (``global-bundle.pem``, ...). Every store is
    fetched and parsed before any is written, so a failed download changes nothing.
    """
    from .cabundle_fetch import count_certificates, download
    from .cabundle_store import store_atomically

    def url(store: TrustStore) -> str:
        return f"{base.rstrip('/')}/{store.filename}" if base else store.url

    fetched = [(name, download(name, url(store), timeout)) for name, store in TRUST_STORES.items()]
    for name, store in UNSHIPPED_STORES.items():
        if not base:
            break
        try:  # optional: most mirrors do not hold it
            fetched.append((name, download(name, url(store), timeout)))
        except RdsIamError:
            logger.info("%s has no %s: %s not updated", base, store.filename, name)
    results = []
    for name, pem in fetched:
        target = stored_bundle(name)
        store_atomically(target, pem)
        results.append((name, target, count_certificates(pem)))
    return results
