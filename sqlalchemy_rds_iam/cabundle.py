"""Which CA bundle verifies RDS servers by default, and refreshing it from AWS.

Order: the ``iam_ca_bundle`` option; else a bundle fetched by ``sqlalchemy-rds-iam ca
update`` into the user's cache directory; else the copy shipped in the wheel. A fetched
bundle is only stored after it parses, so a bad download cannot break connections.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

from .errors import RdsIamError
from .tls import SHIPPED_CA_BUNDLE

__all__ = ["AWS_BUNDLE_URL", "CACHE_DIR_ENV", "default_ca_bundle", "stored_bundle", "update"]

#: Where AWS publishes the commercial-regions global bundle.
AWS_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
#: Environment variable overriding the directory ``ca update`` writes to.
CACHE_DIR_ENV = "SQLALCHEMY_RDS_IAM_CACHE_DIR"


def _cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sqlalchemy-rds-iam"


def stored_bundle() -> Path:
    """Where ``ca update`` stores the bundle (it may not exist)."""
    return _cache_dir() / "global-bundle.pem"


def default_ca_bundle() -> str:
    """The bundle used when ``iam_ca_bundle`` is not given."""
    stored = stored_bundle()
    return str(stored if stored.is_file() else SHIPPED_CA_BUNDLE)


def count_certificates(pem: bytes) -> int:
    """Load ``pem`` as a CA bundle (raising if it does not parse); return how many roots it has."""
    context = ssl.create_default_context(cadata=pem.decode("ascii", "strict"))
    return len(context.get_ca_certs())


def update(url: str = AWS_BUNDLE_URL, timeout: float = 20.0) -> tuple[Path, int]:
    """Fetch the bundle, check it parses, store it atomically; return (path, certificate count)."""
    import urllib.request

    if not url.startswith(("https://", "file://")):
        raise RdsIamError(f"refusing to fetch a CA bundle over {url.split(':', 1)[0]}: use https")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            pem = response.read()
    except OSError as exc:
        raise RdsIamError(f"could not download {url}: {exc}") from exc
    try:
        count = count_certificates(pem)
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise RdsIamError(f"{url} did not return a PEM certificate bundle ({exc})") from exc
    if count == 0:
        raise RdsIamError(f"{url} returned no certificates")
    target = stored_bundle()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".bundle-")
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.replace(tmp, target)
    return target, count
