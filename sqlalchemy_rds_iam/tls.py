"""The CA bundle that verifies RDS servers, and cached ``SSLContext`` objects for drivers.

The RDS global bundle ships inside the package (``data/global-bundle.pem``, provenance in
``data/README.md``), so TLS verification works with no download and no setup.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

__all__ = ["SHIPPED_CA_BUNDLE", "default_ca_bundle", "ssl_context"]

#: The Amazon RDS global CA bundle shipped with the package.
SHIPPED_CA_BUNDLE = Path(__file__).with_name("data") / "global-bundle.pem"


def default_ca_bundle() -> str:
    """Path of the bundle used when ``iam_ca_bundle`` is not given."""
    return str(SHIPPED_CA_BUNDLE)


@functools.lru_cache(maxsize=32)
def ssl_context(ca_bundle: str, mode: str) -> ssl.SSLContext:
    """One context per (bundle, mode), built once: loading 96 roots costs milliseconds."""
    context = ssl.create_default_context(cafile=ca_bundle)
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED
    return context
