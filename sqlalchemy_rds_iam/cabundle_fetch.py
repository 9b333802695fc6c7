"""Downloading a trust store for ``ca update``: https only, and roots only, checked to parse.

Whatever this module accepts, every engine then trusts: a redirect may not leave https, a
file that does not parse or holds a certificate that is no CA refuses the download, and
only self-signed CA certificates (roots) are kept. Only ``ca update`` needs it
(:func:`.cabundle.update`), so a connect never imports it, nor ``urllib.request``.
"""

from __future__ import annotations

import ssl
from typing import Any

from .errors import RdsIamError

__all__ = ["AMAZON_ROOT_FILES", "count_certificates", "download"]

#: The five PEM files at ``amazon-roots``' URL (a repository page, not a bundle).
AMAZON_ROOT_FILES = ("AmazonRootCA1.pem", "AmazonRootCA2.pem", "AmazonRootCA3.pem",
                     "AmazonRootCA4.pem", "SFSRootCAG2.pem")

_PEM_BLOCK = rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----\r?\n?"

#: DER of the basicConstraints extension's OID (2.5.29.19).
_BASIC_CONSTRAINTS_OID = b"\x06\x03\x55\x1d\x13"


def count_certificates(pem: bytes) -> int:
    """Load ``pem`` as a CA bundle (raising if it does not parse); return how many roots it has."""
    context = ssl.create_default_context(cadata=pem.decode("ascii", "strict"))
    return len(context.get_ca_certs())


def _https_only_opener() -> Any:
    """urllib's opener whose redirects may only lead to another https URL: whoever controls
    a plain-HTTP leg could otherwise hand us roots that every engine then trusts."""
    import urllib.request

    class HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                             newurl: str) -> Any:
            if not newurl.lower().startswith("https://"):
                raise RdsIamError(
                    f"refusing the redirect from {req.full_url} to {newurl}: CA bundles are "
                    "fetched over https only"
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(HttpsOnlyRedirects)


def _fetch(url: str, timeout: float) -> bytes:
    if not url.startswith(("https://", "file://")):
        raise RdsIamError(f"refusing to fetch a CA bundle over {url.split(':', 1)[0]}: use https")
    try:
        with _https_only_opener().open(url, timeout=timeout) as response:
            data: bytes = response.read()
    except OSError as exc:
        raise RdsIamError(f"could not download {url}: {exc}") from exc
    return data


def _not_pem(url: str, exc: Exception) -> RdsIamError:
    return RdsIamError(f"{url} did not return a PEM certificate bundle ({exc})")


def _parsed(url: str, pem: bytes) -> int:
    try:
        count = count_certificates(pem)
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise _not_pem(url, exc) from exc
    if count == 0:
        raise RdsIamError(f"{url} returned no certificates")
    return count


def _roots_only(url: str, pem: bytes) -> bytes:
    """The CA roots of ``pem``, in order: AWS says to trust its roots only (the GovCloud
    file also carries intermediates, which expire long before the roots, and are dropped).
    A certificate that is no CA at all (a leaf, self-signed or not) refuses the download:
    OpenSSL would take it as a trust anchor for the server it names."""
    import re

    roots = []
    for block in re.findall(_PEM_BLOCK, pem, re.DOTALL):
        text = block.decode("ascii")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=text)
        certs = context.get_ca_certs()  # OpenSSL's X509_check_ca: empty for a non-CA
        der = ssl.PEM_cert_to_DER_cert(text)
        version: object = certs[0].get("version") if certs else None
        if version != 3 or _BASIC_CONSTRAINTS_OID not in der:
            raise RdsIamError(
                f"{url} holds a certificate that is not a CA (no basicConstraints CA=true): "
                "refusing the download"
            )
        if certs[0].get("subject") == certs[0].get("issuer"):
            roots.append(block.rstrip(b"\r\n") + b"\n")
    return b"".join(roots)


def download(name: str, url: str, timeout: float) -> bytes:
    """Root certificates of trust store ``name`` from ``url``, checked to parse.
    ``amazon-roots`` at AWS is a directory (``.../repository/``) of five root files."""
    if name == "amazon-roots" and url.endswith("/"):
        pem = b"".join(_fetch(url + f, timeout).rstrip(b"\n") + b"\n" for f in AMAZON_ROOT_FILES)
    else:
        pem = _fetch(url, timeout)
    _parsed(url, pem)
    try:
        roots = _roots_only(url, pem)
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise _not_pem(url, exc) from exc
    if not roots:
        raise RdsIamError(f"{url} holds no root certificate")
    return roots
