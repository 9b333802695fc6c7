"""The command line, offline: help, token, client commands' redaction, CA store, early doctor steps."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlalchemy_rds_iam.cabundle import SHIPPED_CA_BUNDLE
from sqlalchemy_rds_iam.cli import build_parser, main

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
PG = f"postgresql+psycopg2://iamuser@{RDS}/app"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def test_help_of_every_command_is_complete(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["token", "-h"], ["psql", "-h"], ["mysql", "-h"], ["ca", "-h"],
                 ["ca", "path", "-h"], ["ca", "update", "-h"], ["doctor", "-h"], ["emulator", "-h"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: sqlalchemy-rds-iam"), argv
    # every subcommand is listed in the top-level help
    top = build_parser().format_help()
    for name in ("token", "psql", "mysql", "ca", "doctor", "emulator"):
        assert f"    {name}" in top


def test_no_command_prints_help() -> None:
    assert main([]) == 2


@pytest.mark.usefixtures("aws_env")
def test_token_prints_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", f"{PG}?plugin=rds_iam&iam_port=6432"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith(f"{RDS}:6432/?Action=connect&DBUser=iamuser&X-Amz-Algorithm=")
    assert "%2Fus-east-1%2Frds-db%2Faws4_request" in token


def test_token_errors_are_short_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", f"{PG}?iam_tls=maybe"]) == 2
    assert "iam_tls" in capsys.readouterr().err
    assert main(["token", "nonsense"]) == 2


@pytest.mark.usefixtures("aws_env")
def test_psql_print_never_shows_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["psql", "--print", PG, "--", "-c", "select 1"]) == 0
    out = capsys.readouterr().out
    assert "X-Amz-Signature" not in out
    assert 'PGPASSWORD="$(sqlalchemy-rds-iam token ' in out
    assert "PGSSLMODE=verify-full" in out and f"PGSSLROOTCERT={SHIPPED_CA_BUNDLE}" in out
    assert out.rstrip().endswith("psql -c 'select 1'")


def test_psql_refuses_plaintext(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["psql", "--print", f"{PG}?sslmode=disable"]) == 2
    assert "sslmode=disable" in capsys.readouterr().err


def test_mysql_print(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mysql", "--print", f"mysql+pymysql://iamuser@{RDS}/app"]) == 0
    out = capsys.readouterr().out
    assert "X-Amz" not in out
    assert "--ssl-verify-server-cert" in out and "--ssl-ca=" in out
    assert 'MYSQL_PWD="$(sqlalchemy-rds-iam token ' in out


def test_ca_path_and_update_from_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["ca", "path"]) == 0
    listed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert listed["rds-aws"] == str(SHIPPED_CA_BUNDLE)
    assert set(listed) == {"rds-aws", "rds-aws-us-gov", "rds-aws-cn", "amazon-roots",
                           "rds-aws+amazon-roots"}
    assert main(["ca", "update", "--from", SHIPPED_CA_BUNDLE.parent.as_uri()]) == 0
    out = capsys.readouterr().out
    for name, count in (("rds-aws", 96), ("rds-aws-us-gov", 6), ("rds-aws-cn", 6),
                        ("amazon-roots", 5)):
        assert f"{name} " in out and f" {count} certificates" in out
    assert main(["ca", "path"]) == 0
    listed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert listed["rds-aws"] == str(tmp_path / "cache" / "global-bundle.pem")
    assert listed["amazon-roots"] == str(tmp_path / "cache" / "amazon-trust-roots.pem")
    # the combined store follows the stored parts (a file named by its content)
    assert listed["rds-aws+amazon-roots"].startswith(str(tmp_path / "cache" / "combined-"))


def test_ca_update_rejects_garbage_and_plain_http(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(tmp_path / "cache"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for pem in SHIPPED_CA_BUNDLE.parent.glob("*.pem"):
        (mirror / pem.name).write_bytes(pem.read_bytes())
    (mirror / "china-bundle.pem").write_text("<html>captive portal</html>")
    assert main(["ca", "update", "--from", mirror.as_uri()]) == 2
    assert main(["ca", "update", "--from", "http://example.invalid/"]) == 2
    # parse before store: one bad store means none is written
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def doctor(capsys: pytest.CaptureFixture[str], url: str) -> tuple[int, dict[str, object]]:
    code = main(["doctor", "--json", "--timeout", "2", url])
    return code, json.loads(capsys.readouterr().out)


def test_doctor_no_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = doctor(capsys, PG)
    assert (code, report["failed_step"]) == (4, "credentials")


@pytest.mark.usefixtures("aws_env")
def test_doctor_wrong_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = doctor(capsys, f"{PG}?aws_region=us-west-2")
    assert (code, report["failed_step"]) == (3, "region")
    assert "us-east-1" in json.dumps(report)


@pytest.mark.usefixtures("aws_env")
def test_doctor_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    code, report = doctor(capsys, f"postgresql+psycopg2://iamuser@127.0.0.1:{port}/app?aws_region=us-east-1")
    assert (code, report["failed_step"]) == (6, "tcp")


class _NoTlsPostgres(socketserver.BaseRequestHandler):
    """Answers PostgreSQL's SSLRequest with 'N', as a server without TLS does."""

    def handle(self) -> None:
        self.request.recv(8)
        self.request.sendall(b"N")


@pytest.fixture
def plaintext_server() -> Iterator[int]:
    server = socketserver.TCPServer(("127.0.0.1", 0), _NoTlsPostgres)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.usefixtures("aws_env")
def test_doctor_tls_refused(capsys: pytest.CaptureFixture[str], plaintext_server: int) -> None:
    url = f"postgresql+psycopg2://iamuser@127.0.0.1:{plaintext_server}/app?aws_region=us-east-1"
    code, report = doctor(capsys, url)
    assert (code, report["failed_step"]) == (7, "tls")
    steps = report["steps"]
    assert isinstance(steps, list)
    assert [s["name"] for s in steps] == ["options", "region", "credentials", "dns", "tcp", "tls"]


@pytest.fixture
def sts_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's STS in server mode on loopback: the real HTTP API, no network."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint)
    yield endpoint
    server.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.usefixtures("aws_env", "sts_server")
def test_doctor_whoami_names_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql+psycopg2://iamuser@127.0.0.1:{_closed_port()}/app?aws_region=us-east-1"
    code = main(["doctor", "--json", "--whoami", "--timeout", "2", url])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["failed_step"]) == (6, "tcp")
    credentials = next(s for s in report["steps"] if s["name"] == "credentials")
    assert credentials["ok"] and "arn:aws:sts::123456789012:user/moto" in credentials["detail"]


@pytest.mark.usefixtures("aws_env")
def test_doctor_whoami_without_sts_is_a_credentials_failure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{_closed_port()}")
    code = main(["doctor", "--json", "--whoami", "--timeout", "2", PG])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["failed_step"]) == (4, "credentials")
    assert "GetCallerIdentity" in json.dumps(report)
