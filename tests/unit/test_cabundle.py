"""Trust stores: what ships, which endpoint gets which, the test seam, `ca update`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
from pathlib import Path

import pytest
import sqlalchemy as sa

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import ConfigurationError, TrustStoreError, cabundle, cabundle_fetch
from sqlalchemy_rds_iam.cabundle import (
    COMBINED,
    SHIPPED_DIR,
    SHIPPED_REGIONS,
    TEST_SEAM_ENV,
    TRUST_STORES,
    bundle_path,
    missing_region_root,
    trust_store_for,
)
from sqlalchemy_rds_iam.endpoints import parse_hostname
from tests.fakes import driver_arguments, set_aws_env

ID = "c9akciq32lce"


def subjects(path: str | Path) -> list[dict[str, str]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(path))
    return [
        {key: value for rdn in cert["subject"] for key, value in rdn}  # type: ignore[misc]
        for cert in context.get_ca_certs()
    ]


def common_names(path: str | Path) -> set[str]:
    return {s["commonName"] for s in subjects(path)}


# --- what ships -------------------------------------------------------------------------

SHA256 = {  # as recorded in sqlalchemy_rds_iam/data/README.md
    "global-bundle.pem": "516c8cb5e3436763cdd4fa5aa480cab529e7a1a75a35afa458a9d50d89618e4f",
    "govcloud-bundle.pem": "694a8e0f4376f3133dbd76732b7644264c8a8f4c17b66d306cbec18aae58e46a",
    "china-bundle.pem": "d10db458b3b428b963a764a78694690d3af80616cd047de7ab56db53fb760a4e",
    "amazon-trust-roots.pem": "dfaa39c0350288ded35812f7b80f76c4a422b97ecc04c4ac84e325bec528b1b8",
    "global-and-amazon-roots.pem": "9fba89dceb730d61331bfd8f62bc885d964b2936762c6127fd546c0f8c526d23",
}


@pytest.mark.parametrize(("name", "digest"), SHA256.items())
def test_shipped_files_match_their_recorded_hashes(name: str, digest: str) -> None:
    data = (SHIPPED_DIR / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    assert digest in (SHIPPED_DIR / "README.md").read_text()


def test_data_readme_has_no_authoring_note() -> None:
    assert "Ship it inside the package" not in (SHIPPED_DIR / "README.md").read_text()


def test_every_shipped_certificate_is_a_self_signed_root() -> None:
    for store in TRUST_STORES.values():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(SHIPPED_DIR / store.filename))
        certs = context.get_ca_certs()
        assert certs and all(c["subject"] == c["issuer"] for c in certs), store.name


def test_commercial_bundle_holds_rds_roots_only() -> None:
    names = common_names(SHIPPED_DIR / "global-bundle.pem")
    assert len(names) == 102
    assert "Amazon RDS us-east-1 Root CA RSA2048 G1" in names
    assert all(n.startswith("Amazon RDS ") for n in names)


@pytest.mark.parametrize(("filename", "regions"), [
    ("govcloud-bundle.pem", ("us-gov-west-1", "us-gov-east-1")),  # and no intermediate
    ("china-bundle.pem", ("cn-north-1", "cn-northwest-1")),
])
def test_partition_bundle_holds_its_six_roots(filename: str, regions: tuple[str, str]) -> None:
    assert common_names(SHIPPED_DIR / filename) == {
        f"Amazon RDS {region} Root CA {alg} G1"
        for region in regions
        for alg in ("RSA2048", "RSA4096", "ECC384")
    }


def test_amazon_roots_are_the_amazon_trust_services_roots() -> None:
    assert common_names(SHIPPED_DIR / "amazon-trust-roots.pem") == {
        "Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4",
        "Starfield Services Root Certificate Authority - G2",
    }


def test_combined_file_is_the_commercial_bundle_then_the_amazon_roots() -> None:
    parts = [(SHIPPED_DIR / f).read_bytes() for f in ("global-bundle.pem", "amazon-trust-roots.pem")]
    assert (SHIPPED_DIR / "global-and-amazon-roots.pem").read_bytes() == b"".join(parts)


@pytest.mark.parametrize("name", SHIPPED_REGIONS)
def test_shipped_region_table_matches_the_files(name: str) -> None:
    path = str(SHIPPED_DIR / name)
    assert cabundle._regions_in(path, 0) == SHIPPED_REGIONS[name]


def test_shipped_files_are_package_data() -> None:
    text = Path(sqlalchemy_rds_iam.__file__).parent.parent.joinpath("pyproject.toml").read_text()
    assert '"sqlalchemy_rds_iam.data" = ["*.pem", "README.md"]' in text


# --- which endpoint gets which store ----------------------------------------------------

TRUST_TABLE = [
    (f"db.{ID}.us-east-1.rds.amazonaws.com", "rds-aws"),
    (f"app.cluster-{ID}.us-east-1.rds.amazonaws.com", "rds-aws"),
    (f"app.cluster-ro-{ID}.us-east-1.rds.amazonaws.com", "rds-aws"),
    (f"app.cluster-custom-{ID}.us-east-1.rds.amazonaws.com", "rds-aws"),
    (f"lim.shardgrp-{ID}.us-east-1.rds.amazonaws.com", "rds-aws"),
    (f"app.global-{ID}.global.rds.amazonaws.com", "rds-aws"),
    (f"db.{ID}.us-gov-west-1.rds.amazonaws.com", "rds-aws-us-gov"),
    (f"db.{ID}.rds.cn-north-1.amazonaws.com.cn", "rds-aws-cn"),
    (f"db.{ID}.cn-northwest-1.rds.amazonaws.com.cn", "rds-aws-cn"),
    (f"p.proxy-{ID}.us-east-1.rds.amazonaws.com", "amazon-roots"),
    (f"ro.endpoint.proxy-{ID}.us-gov-west-1.rds.amazonaws.com", "amazon-roots"),
    ("abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", "amazon-roots"),
    ("db.example.com", COMBINED),
    ("127.0.0.1", COMBINED),
]


@pytest.mark.parametrize(("host", "store"), TRUST_TABLE)
def test_trust_store_per_endpoint(host: str, store: str) -> None:
    assert trust_store_for(parse_hostname(host)) == store


def test_iso_partitions_need_an_explicit_bundle() -> None:
    with pytest.raises(ConfigurationError, match=r"aws-iso.*iam_ca_bundle"):
        trust_store_for(parse_hostname(f"db.{ID}.us-iso-east-1.rds.c2s.ic.gov"))



EUSC = [f"db.{ID}.eusc-de-east-1.rds.amazonaws.eu", f"app.cluster-{ID}.eusc-de-east-1.rds.amazonaws.eu",
        f"p.proxy-{ID}.eusc-de-east-1.rds.amazonaws.eu"]


@pytest.mark.parametrize("host", EUSC)
def test_eusc_endpoints_are_refused_before_any_connection(
        host: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No EUSC trust store ships: create_engine refuses, naming both fixes, and nothing
    connects (the host does not resolve here; a connect would fail differently)."""
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    url = f"postgresql+psycopg2://u@{host}/db?plugin=rds_iam"
    with pytest.raises(TrustStoreError) as info:
        sa.create_engine(url)
    message = str(info.value)
    assert "aws-eusc" in message and "iam_ca_bundle" in message
    assert "sqlalchemy-rds-iam ca update --from" in message
    # the fixes do what the message says: a bundle of one's own, or one stored from a mirror
    mine = str(SHIPPED_DIR / "amazon-trust-roots.pem")  # (a stand-in: no EUSC bundle exists)
    engine = sa.create_engine(f"{url}&iam_ca_bundle={mine}")
    assert sqlalchemy_rds_iam.connector(engine).target.ca_bundle == mine
    assert sqlalchemy_rds_iam.connector(engine).target.region == "eusc-de-east-1"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for store in TRUST_STORES.values():
        (mirror / store.filename).write_bytes((SHIPPED_DIR / store.filename).read_bytes())
    cabundle.update(mirror.as_uri())  # a mirror without the EUSC bundle: that store is skipped
    with pytest.raises(TrustStoreError):
        sa.create_engine(url)
    (mirror / "eusc-bundle.pem").write_bytes((SHIPPED_DIR / "amazon-trust-roots.pem").read_bytes())
    names = [name for name, _, _ in cabundle.update(mirror.as_uri())]
    assert names[-1] == "rds-aws-eusc"
    engine = sa.create_engine(url)
    assert sqlalchemy_rds_iam.connector(engine).target.ca_bundle == str(tmp_path / "cache" / "eusc-bundle.pem")


def test_cli_refuses_eusc_with_the_trust_store_exit_code(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sqlalchemy_rds_iam.cli import main

    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path))
    set_aws_env(monkeypatch)
    assert main(["token", f"postgresql+psycopg2://u@{EUSC[0]}/db"]) == 8
    err = capsys.readouterr().err
    assert "iam_ca_bundle" in err and "ca update --from" in err and "Traceback" not in err


def engine_cparams(url: str) -> dict[str, object]:
    return driver_arguments(sa.create_engine(url))


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(("host", "store"), [t for t in TRUST_TABLE if "global." not in t[0]])
def test_engines_default_to_their_endpoints_store(host: str, store: str) -> None:
    region = "&aws_region=us-east-1" if store == COMBINED else ""
    for url in (f"postgresql+psycopg2://u@{host}/db?plugin=rds_iam{region}",
                f"mysql+mysqlconnector://u@{host}/db?plugin=rds_iam{region}"):  # ssl_ca=
        if "dsql" in host and url.startswith("mysql"):
            continue
        cparams = engine_cparams(url)
        assert cparams.get("sslrootcert", cparams.get("ssl_ca")) == bundle_path(store)


@pytest.mark.usefixtures("aws_env")
def test_iam_host_picks_the_store_and_iam_ca_bundle_overrides() -> None:
    proxy = f"p.proxy-{ID}.us-east-1.rds.amazonaws.com"
    cparams = engine_cparams(f"postgresql+psycopg2://u@localhost/db?plugin=rds_iam&iam_host={proxy}")
    assert cparams["sslrootcert"] == bundle_path("amazon-roots")
    mine = str(SHIPPED_DIR / "china-bundle.pem")
    cparams = engine_cparams(f"postgresql+psycopg2://u@{proxy}/db?plugin=rds_iam&iam_ca_bundle={mine}")
    assert cparams["sslrootcert"] == mine


def test_global_writer_endpoint_region_comes_from_the_api_or_aws_region() -> None:
    url = f"postgresql+psycopg2://u@app.global-{ID}.global.rds.amazonaws.com/db?plugin=rds_iam"
    iam = sqlalchemy_rds_iam.connector(sa.create_engine(url))  # resolved at the first token
    assert iam.target.region is None and iam.writer_region is not None
    assert iam.writer_region.global_cluster == "app" and iam.writer_region.calls == 0
    engine = sa.create_engine(url + "&aws_region=eu-west-1")
    assert sqlalchemy_rds_iam.connector(engine).target.region == "eu-west-1"
    assert sqlalchemy_rds_iam.connector(engine).writer_region is None


# --- a region the bundle has no root for ------------------------------------------------

NEW_REGION_HOST = f"db.{ID}.ap-east-2.rds.amazonaws.com"


def test_missing_region_root_names_the_region_and_the_fix() -> None:
    endpoint = parse_hostname(NEW_REGION_HOST)
    message = missing_region_root(endpoint, bundle_path("rds-aws"))
    assert message is not None
    assert "ap-east-2" in message and "sqlalchemy-rds-iam ca update" in message
    assert missing_region_root(parse_hostname(f"db.{ID}.us-east-1.rds.amazonaws.com"),
                               bundle_path("rds-aws")) is None
    # a bundle with no RDS root at all (a tunnel's or a test CA) says nothing about regions
    assert missing_region_root(endpoint, bundle_path("amazon-roots")) is None
    # proxies and DSQL do not chain to regional roots
    assert missing_region_root(parse_hostname(f"p.proxy-{ID}.ap-east-2.rds.amazonaws.com"),
                               bundle_path("amazon-roots")) is None


def test_engine_for_a_region_without_a_root_fails_before_connecting() -> None:
    with pytest.raises(ConfigurationError, match="no Amazon RDS root for ap-east-2"):
        sa.create_engine(f"postgresql+psycopg2://u@{NEW_REGION_HOST}/db?plugin=rds_iam")


def test_own_bundle_without_the_region_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqlalchemy_rds_iam"):
        sa.create_engine(f"postgresql+psycopg2://u@{NEW_REGION_HOST}/db?plugin=rds_iam"
                         f"&iam_ca_bundle={bundle_path('rds-aws')}")
    assert "ap-east-2" in caplog.text


def test_a_stored_bundle_with_the_region_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path))
    fake = _throwaway_ca(tmp_path, "Amazon RDS ap-east-2 Root CA RSA2048 G1")
    (tmp_path / "global-bundle.pem").write_bytes(
        (SHIPPED_DIR / "global-bundle.pem").read_bytes() + fake.read_bytes()
    )
    engine = sa.create_engine(f"postgresql+psycopg2://u@{NEW_REGION_HOST}/db?plugin=rds_iam")
    assert sqlalchemy_rds_iam.connector(engine).target.ca_bundle == str(tmp_path / "global-bundle.pem")


def _intermediate(directory: Path) -> bytes:
    """A CA certificate issued by another CA (as AWS's GovCloud intermediates are)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    issuer_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intermediate G1")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Root")]))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _throwaway_ca(directory: Path, common_name: str) -> Path:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{common_name.replace(' ', '-')}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


# --- the test seam ----------------------------------------------------------------------

def test_seam_replaces_named_stores_and_warns_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    proxy_ca = _throwaway_ca(tmp_path, "Stand-in Amazon Root")
    rds_ca = _throwaway_ca(tmp_path, "Stand-in RDS")
    monkeypatch.setenv(TEST_SEAM_ENV, json.dumps({"amazon-roots": str(proxy_ca), "rds-aws": str(rds_ca)}))
    with caplog.at_level(logging.WARNING, logger="sqlalchemy_rds_iam"):
        assert bundle_path("amazon-roots") == str(proxy_ca)
        assert bundle_path("rds-aws") == str(rds_ca)
        assert bundle_path("rds-aws-cn") == str(SHIPPED_DIR / "china-bundle.pem")
        combined = Path(bundle_path(COMBINED))
    assert common_names(combined) == {"Stand-in Amazon Root", "Stand-in RDS"}
    warnings = [r for r in caplog.records if TEST_SEAM_ENV in r.getMessage()]
    assert len(warnings) == 1
    assert "amazon-roots, rds-aws" in warnings[0].getMessage()
    # a stand-in CA has no RDS roots, so the region check stays quiet
    engine = sa.create_engine(f"postgresql+psycopg2://u@{NEW_REGION_HOST}/db?plugin=rds_iam")
    assert sqlalchemy_rds_iam.connector(engine).target.ca_bundle == str(rds_ca)


def test_seam_is_unset_by_default() -> None:
    assert bundle_path("rds-aws") == str(SHIPPED_DIR / "global-bundle.pem")
    assert bundle_path(COMBINED) == str(SHIPPED_DIR / "global-and-amazon-roots.pem")


@pytest.mark.parametrize("value", ["{not json", '["rds-aws"]', '{"rds-aws": 1}', '{"nope": "/x"}'])
def test_seam_rejects_malformed_values(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_SEAM_ENV, value)
    with pytest.raises(ConfigurationError, match=TEST_SEAM_ENV):
        bundle_path("rds-aws")


# --- ca update ----------------------------------------------------------------------------

def test_update_from_aws_layout_keeps_roots_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS's GovCloud file carries 4 intermediates; the Amazon roots are 5 separate files."""
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "aws"
    (site / "repository").mkdir(parents=True)
    roots = (SHIPPED_DIR / "govcloud-bundle.pem").read_bytes()
    (site / "gov.pem").write_bytes(roots + _intermediate(tmp_path) + roots[:0])
    blocks = (SHIPPED_DIR / "amazon-trust-roots.pem").read_text().split("-----END CERTIFICATE-----")
    for filename, block in zip(cabundle_fetch.AMAZON_ROOT_FILES, blocks, strict=False):
        (site / "repository" / filename).write_text(block.strip() + "\n-----END CERTIFICATE-----\n")
    roots = cabundle_fetch.download("rds-aws-us-gov", (site / "gov.pem").as_uri(), 5)
    assert hashlib.sha256(roots).hexdigest() == SHA256["govcloud-bundle.pem"]
    amazon = cabundle_fetch.download("amazon-roots", (site / "repository").as_uri() + "/", 5)
    assert common_names_of_bytes(amazon, tmp_path) == common_names(SHIPPED_DIR / "amazon-trust-roots.pem")


def common_names_of_bytes(pem: bytes, tmp_path: Path) -> set[str]:
    path = tmp_path / "x.pem"
    path.write_bytes(pem)
    return common_names(path)


def test_update_stores_every_store_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    results = cabundle.update(SHIPPED_DIR.as_uri())
    assert [(n, c) for n, _, c in results] == [
        ("rds-aws", 102), ("rds-aws-us-gov", 6), ("rds-aws-cn", 6), ("amazon-roots", 5)
    ]
    for name, path, _ in results:
        assert bundle_path(name) == str(path)
        assert common_names(path) == common_names(SHIPPED_DIR / TRUST_STORES[name].filename)
    assert not list((tmp_path / "cache").glob(".bundle-*"))  # no temporary file left behind


# --- doctor says the same ------------------------------------------------------------------

def test_doctor_names_the_missing_region_root(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from sqlalchemy_rds_iam.cli import main

    set_aws_env(monkeypatch)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        url = f"postgresql+psycopg2://u@127.0.0.1:{port}/app?iam_host={NEW_REGION_HOST}"
        assert main(["doctor", "--json", "--timeout", "2", url]) == 8
    report = json.loads(capsys.readouterr().out)
    assert report["failed_step"] == "certificate"
    assert "ap-east-2" in report["steps"][-1]["detail"]
    assert "ca update" in report["steps"][-1]["fix"]


def test_doctor_asks_for_a_region_for_global_endpoints(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """No aws_region and no AWS region to call DescribeGlobalClusters in: say both."""
    from sqlalchemy_rds_iam.cli import main

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    set_aws_env(monkeypatch)
    url = f"postgresql+psycopg2://u@app.global-{ID}.global.rds.amazonaws.com/app"
    assert main(["doctor", "--json", url]) == 3
    report = json.loads(capsys.readouterr().out)
    detail = report["steps"][-1]["detail"]
    assert "global writer endpoint names no region" in detail and "aws_region=" in detail
    assert "rds:DescribeGlobalClusters" in detail


def test_combined_store_falls_back_to_tmp_when_the_cache_dir_is_unwritable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda: the home directory is read-only, /tmp is not."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    stand_in = _throwaway_ca(tmp_path, "Stand-in RDS")
    monkeypatch.setenv(TEST_SEAM_ENV, json.dumps({"rds-aws": str(stand_in)}))
    combined = Path(bundle_path(COMBINED))
    assert combined.parent == tmp_path / "tmp" / f"sqlalchemy-rds-iam-{os.geteuid()}"
    assert "Stand-in RDS" in common_names(combined)
    assert bundle_path(COMBINED) == str(combined)  # named by content: written once, reused


def test_shipped_bundles_are_not_reparsed_on_the_connect_path(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """Loading ~100 roots costs ~20 ms of a cold start: the package's own (tested) bundles are
    only checked to be present; any other file is still parsed."""
    from sqlalchemy_rds_iam import tls

    parsed: list[str] = []
    real = tls._parse_problem

    def recording(path: str, *stat: int) -> str | None:
        parsed.append(path)
        return real(path, *stat)

    monkeypatch.setattr(tls, "_parse_problem", recording)
    for name in TRUST_STORES:
        assert tls.bundle_problem(bundle_path(name)) is None
    assert parsed == []
    copy = tmp_path / "copy.pem"
    copy.write_bytes((SHIPPED_DIR / "global-bundle.pem").read_bytes())
    assert tls.bundle_problem(str(copy)) is None
    assert parsed == [str(copy)]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert tls.bundle_problem(str(garbage)) is not None


_CHOOSE = """
import json, sys
from sqlalchemy_rds_iam.cabundle import COMBINED, bundle_path
for name in ("rds-aws", "amazon-roots", COMBINED):
    bundle_path(name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("sqlalchemy_rds_iam.cabundle"))))
"""


@pytest.mark.parametrize("stored", [False, True])
def test_choosing_a_bundle_loads_the_store_only_for_a_stored_copy(tmp_path: Path,
                                                                  stored: bool) -> None:
    """The shipped bundles need neither the private store's checks nor `ca update`'s download
    code: a cold start does not load them. A stored copy is checked (the store), never fetched."""
    import subprocess
    import sys

    cache = tmp_path / "cache"
    if stored:
        cache.mkdir(mode=0o700)
        (cache / "global-bundle.pem").write_bytes((SHIPPED_DIR / "global-bundle.pem").read_bytes())
    env = {"PATH": os.environ.get("PATH", ""), "SQLALCHEMY_RDS_IAM_CACHE_DIR": str(cache)}
    run = subprocess.run([sys.executable, "-c", _CHOOSE], capture_output=True, text=True,
                         env=env, check=True)
    loaded = json.loads(run.stdout)
    assert loaded == (["sqlalchemy_rds_iam.cabundle", "sqlalchemy_rds_iam.cabundle_store"]
                      if stored else ["sqlalchemy_rds_iam.cabundle"])
