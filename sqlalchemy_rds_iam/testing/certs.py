"""A throwaway certificate authority and server certificate for the emulator's TLS.

Clients verify the emulator exactly as they verify RDS (CA bundle + hostname), so the server
certificate names ``localhost``, ``127.0.0.1`` and ``::1``. ``cryptography`` is imported
lazily: it is only needed when the emulator starts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsFiles", "make_stand_ins", "make_tls_files"]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files written by :func:`make_tls_files`."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(
    directory: Path,
    *,
    days: int = 30,
    names: tuple[str, ...] = (),
    label: str = "throwaway CA",
    prefix: str = "",
) -> TlsFiles:
    """Write a fresh CA and a server certificate/key signed by it into ``directory``.

    The certificate names ``localhost``, 127.0.0.1, ::1 and ``names``; ``label`` ends the
    CA's common name, ``prefix`` the file names (one directory holds several CAs).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = now - datetime.timedelta(minutes=5)
    not_after = now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sqlalchemy-rds-iam emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"sqlalchemy-rds-iam emulator {label}"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    *(x509.DNSName(n) for n in names),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca_cert=directory / f"{prefix}ca.pem",
        server_cert=directory / f"{prefix}server.crt",
        server_key=directory / f"{prefix}server.key",
    )
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # Created 0600 from the start: the key is never readable by anyone else, even briefly.
    with open(files.server_key, "wb", opener=_private_opener) as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    files.ca_cert.chmod(0o644)
    files.server_cert.chmod(0o644)
    return files


def make_stand_ins(
    directory: Path, names: dict[str, tuple[str, ...]], *, days: int = 30
) -> dict[str, TlsFiles]:
    """One throwaway CA per trust-store name, each with a server certificate for ``names``.

    The CA of store ``S`` stands in for the real store ``S`` (through the test seam,
    ``SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES``): a client verifies a server only if it picked
    the store whose stand-in signed that server's certificate.
    """
    return {
        store: make_tls_files(
            directory, days=days, names=hostnames, label=f"stand-in for {store}",
            prefix=f"{store}-",
        )
        for store, hostnames in names.items()
    }


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
