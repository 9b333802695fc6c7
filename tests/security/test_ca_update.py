"""Finding 8 of issue 20: ``ca update`` trusts https only, and CA roots only.

A local https server (the emulator's throwaway CA, trusted through ``SSL_CERT_FILE``)
mirrors the bundles; one path redirects to a plain-HTTP server that would hand out a root
of the attacker's. The redirect is refused before the plain server sees a request; the
positive control fetches the same files over https. A bundle holding a leaf certificate
(self-signed or not), which OpenSSL would take as a trust anchor, is refused as a whole.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlalchemy_rds_iam import RdsIamError, cabundle
from sqlalchemy_rds_iam.cabundle import SHIPPED_DIR, TRUST_STORES
from sqlalchemy_rds_iam.cli import main
from sqlalchemy_rds_iam.testing.certs import make_tls_files
from tests.fakes import make_pki


class Server:
    """An http(s) server on loopback: serves ``files``, redirects ``/to/<path>`` to
    ``redirect_base + <path>``, and counts the requests it got."""

    def __init__(self, files: dict[str, bytes], context: ssl.SSLContext | None = None,
                 redirect_base: str = "") -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                name = self.path.lstrip("/")
                if name.startswith("to/"):
                    self.send_response(302)
                    self.send_header("Location", redirect_base + name[3:])
                    self.end_headers()
                elif name in files:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(files[name])))
                    self.end_headers()
                    self.wfile.write(files[name])
                else:
                    self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"{'https' if context else 'http'}://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


SHIPPED = {store.filename: (SHIPPED_DIR / store.filename).read_bytes()
           for store in TRUST_STORES.values()}


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Server]]:
    """``mirror`` (https), ``plain`` (an attacker on plain http serving its own root under
    every name), ``hop`` (https, redirecting to the https mirror)."""
    tls = make_tls_files(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_cert))
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    attacker_root = make_pki(tmp_path / "attacker").ca.read_bytes()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.server_cert, tls.server_key)
    plain = Server(dict.fromkeys(SHIPPED, attacker_root))
    mirror = Server(SHIPPED, context, redirect_base=plain.base)
    hop = Server({}, context, redirect_base=mirror.base)
    try:
        yield {"mirror": mirror, "plain": plain, "hop": hop}
    finally:
        for server in (mirror, plain, hop):
            server.close()


def test_positive_control_the_https_mirror_is_fetched(servers: dict[str, Server]) -> None:
    stored = cabundle.update(servers["mirror"].base)
    assert [(name, count) for name, _, count in stored] == [
        ("rds-aws", 96), ("rds-aws-us-gov", 6), ("rds-aws-cn", 6), ("amazon-roots", 5)]
    assert len(servers["mirror"].requests) == 4 and servers["plain"].requests == []


def test_the_plain_server_would_hand_out_its_root(servers: dict[str, Server]) -> None:
    """Positive control for the harness: urllib's own opener follows https -> http."""
    import urllib.request

    url = servers["mirror"].base + "to/global-bundle.pem"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the attack)
        assert b"BEGIN CERTIFICATE" in response.read()
    assert servers["plain"].requests == ["/global-bundle.pem"]


def test_a_redirect_to_plain_http_is_refused(servers: dict[str, Server], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    mirror = servers["mirror"]
    with pytest.raises(RdsIamError, match=r"refusing the redirect .* https only"):
        cabundle.update(mirror.base + "to/")
    assert servers["plain"].requests == []  # the plain leg was never asked
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    assert main(["ca", "update", "--from", mirror.base + "to/"]) == 1
    assert "refusing the redirect" in capsys.readouterr().err


def test_a_redirect_to_https_is_followed(servers: dict[str, Server]) -> None:
    assert len(cabundle.update(servers["hop"].base + "to/")) == 4
    assert len(servers["mirror"].requests) == 4 and servers["plain"].requests == []


@pytest.mark.parametrize("leaf", ["self-signed", "valid"])
def test_a_leaf_certificate_refuses_the_download(tmp_path: Path, leaf: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    pki = make_pki(tmp_path / "pki")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, pem in SHIPPED.items():
        (mirror / name).write_bytes(pem)
    (mirror / "global-bundle.pem").write_bytes(SHIPPED["global-bundle.pem"]
                                               + pki.certs[leaf][0].read_bytes())
    with pytest.raises(RdsIamError, match="not a CA"):
        cabundle.update(mirror.as_uri())
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_an_intermediate_is_dropped_and_a_root_kept(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS's GovCloud file carries intermediates: CAs, not roots, left out (not refused)."""
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    stored = cabundle.update(SHIPPED_DIR.as_uri())
    assert dict((n, c) for n, _, c in stored)["rds-aws-us-gov"] == 6
