"""The command line, offline: help, token, client commands' redaction, CA store, early doctor steps."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlalchemy_rds_iam.cabundle import SHIPPED_CA_BUNDLE
from sqlalchemy_rds_iam.cli import build_parser, main
from tests.fakes import closed_port, moto_server

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
PG = f"postgresql+psycopg2://iamuser@{RDS}/app"



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
    assert f"'--dbname=host={RDS} port=5432 user=iamuser dbname=app sslmode=verify-full " \
        f"sslrootcert={SHIPPED_CA_BUNDLE} gssencmode=disable'" in out
    assert out.startswith("env -u PGSERVICE -u PGSERVICEFILE ") and "-u PGSSLMODE" in out
    assert out.rstrip().endswith(" -c 'select 1'")


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
    # not a usage error: the command failed, and says why (exit 1)
    assert main(["ca", "update", "--from", mirror.as_uri()]) == 1
    assert main(["ca", "update", "--from", "http://example.invalid/"]) == 1
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
    # create_engine refuses it (a RegionError) before any network step; doctor says: region
    code, report = doctor(capsys, f"{PG}?aws_region=us-west-2")
    assert (code, report["failed_step"]) == (3, "region")
    assert [s["name"] for s in report["steps"]] == ["region"]
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
    with moto_server(monkeypatch, "sts") as endpoint:
        yield endpoint


@pytest.mark.usefixtures("aws_env", "sts_server")
def test_doctor_whoami_names_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql+psycopg2://iamuser@127.0.0.1:{closed_port()}/app?aws_region=us-east-1"
    code = main(["doctor", "--json", "--whoami", "--timeout", "2", url])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["failed_step"]) == (6, "tcp")
    whoami = next(s for s in report["steps"] if s["name"] == "whoami")
    assert whoami["ok"] and "arn:aws:sts::123456789012:user/moto" in whoami["detail"]


@pytest.mark.usefixtures("aws_env")
def test_doctor_whoami_without_sts_is_reported_and_the_steps_go_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{closed_port()}")
    url = f"postgresql+psycopg2://iamuser@127.0.0.1:{closed_port()}/app?aws_region=us-east-1"
    code = main(["doctor", "--json", "--whoami", "--timeout", "2", url])
    report = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in report["steps"]]
    assert names == ["options", "region", "credentials", "whoami", "dns", "tcp"]
    whoami = report["steps"][3]
    assert (whoami["ok"], whoami["fatal"]) == (False, False)
    assert "GetCallerIdentity" in whoami["detail"]
    # the first fatal failure picks the code, not the advisory one before it
    assert (code, report["failed_step"]) == (6, "tcp")


# -- the error contract -------------------------------------------------------------------------

# Runs the CLI in a fresh interpreter where the named Python drivers cannot be imported.
_BLOCKED_DRIVERS = """
import sys
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, Block())
from sqlalchemy_rds_iam.cli import main
sys.exit(main(sys.argv[2:]))
"""
ALL_DRIVERS = "psycopg2,psycopg,pg8000,asyncpg,pymysql,MySQLdb,mysql,aiomysql,asyncmy"


def cli_without(drivers: str, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-c", _BLOCKED_DRIVERS, drivers, *args],
                          capture_output=True, text=True, timeout=60, env={**base, **(env or {})})


AWS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
       "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
       "AWS_EC2_METADATA_DISABLED": "true"}


NO_DRIVER_COMMANDS = [
    ["token", f"mysql://iamuser@{RDS}/app"],
    ["token", f"mysql+asyncmy://iamuser@{RDS}/app"],
    ["token", f"mysql+aiomysql://iamuser@{RDS}/app"],
    ["token", f"mariadb+mysqldb://iamuser@{RDS}/app"],
    ["token", f"postgresql+asyncpg://iamuser@{RDS}/app"],
    ["token", f"postgresql://iamuser@{RDS}/app"],
    ["mysql", "--print", f"mysql://iamuser@{RDS}/app"],
    ["psql", "--print", f"postgresql+psycopg_async://iamuser@{RDS}/app"],
]

# Runs each command (a JSON list of argv) in one interpreter where no driver can be imported.
_EACH = """
import contextlib, io, json, sys
from sqlalchemy_rds_iam.cli import main
results = []
for argv in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def test_cli_imports_no_python_driver() -> None:
    script = _BLOCKED_DRIVERS.split("from sqlalchemy_rds_iam.cli")[0] + _EACH
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-c", script, ALL_DRIVERS, json.dumps(NO_DRIVER_COMMANDS)],
        capture_output=True, text=True, timeout=60, env={**base, **AWS})
    assert result.returncode == 0, result.stderr
    for argv, (code, out, err) in zip(NO_DRIVER_COMMANDS, json.loads(result.stdout), strict=True):
        assert (code, err) == (0, ""), argv
        if argv[0] == "token":
            assert out.startswith(f"{RDS}:"), argv


def test_doctor_without_the_driver_is_an_options_failure() -> None:
    result = cli_without("MySQLdb", "doctor", "--json", f"mysql://iamuser@{RDS}/app", env=AWS)
    report = json.loads(result.stdout)
    assert (result.returncode, report["failed_step"]) == (2, "options")
    assert "pip install 'sqlalchemy-rds-iam[mysqlclient]'" in report["steps"][0]["fix"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["token", PG], 4, "no AWS credentials"),
    (["token", "nonsense"], 2, "not a usable SQLAlchemy URL"),
    (["token", f"{PG}?aws_regoin=us-east-1"], 2, "did you mean 'aws_region'"),
    (["token", f"sqlite:///{RDS}"], 2, "not supported for sqlite"),
    (["psql", "--print", f"mysql+pymysql://iamuser@{RDS}/app"], 2, "use `sqlalchemy-rds-iam mysql`"),
    (["mysql", "--print", PG], 2, "use `sqlalchemy-rds-iam psql`"),
    (["doctor"], 2, "the following arguments are required: URL"),
    (["token", PG, "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["ca", "update", "--from", "http://example.invalid/"], 1, "use https"),
    (["ca", "update", "--from", "https://[::1/"], 2, "not a usable URL"),
])
def test_expected_failures_are_one_line_with_the_documented_code(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == code  # in process: a traceback would be an exception escaping here
    err = capsys.readouterr().err
    assert message in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


@pytest.mark.parametrize("args", [
    ["doctor", "--json"],
    ["doctor", "--json", "--timeout", "soon", PG],
    ["doctor", "--json", f"mysql+nosuchdriver://iamuser@{RDS}/app"],
])
def test_doctor_json_always_prints_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(args)
    report = json.loads(capsys.readouterr().out)
    assert code == report["exit_code"] == 2 and report["ok"] is False


@pytest.mark.usefixtures("aws_env")
def test_doctor_unexpected_error_is_still_a_json_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("resolver exploded")

    monkeypatch.setattr(socket, "getaddrinfo", broken)
    code, report = doctor(capsys, PG)
    assert (code, report["failed_step"]) == (1, "dns")
    assert "unexpected error: RuntimeError: resolver exploded" in json.dumps(report)


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(("query", "message"), [
    ("sslmode=disable", "sslmode=disable"),
    ("iam_tls=none", "iam_tls"),
    ("", "password"),
])
def test_doctor_option_problems_exit_2_before_any_network_step(
    capsys: pytest.CaptureFixture[str], query: str, message: str
) -> None:
    user = "iamuser" if query else "iamuser:secret"
    # an unresolvable host: a network step would fail differently (dns 5)
    code, report = doctor(capsys, f"postgresql+psycopg2://{user}@db.invalid/app?{query}")
    assert (code, report["failed_step"]) == (2, "options")
    assert [s["name"] for s in report["steps"]] == ["options"]
    assert message in report["steps"][0]["detail"]
    assert "secret" not in json.dumps(report)


def test_exit_codes_in_help_and_docs_come_from_the_steps() -> None:
    from sqlalchemy_rds_iam.doctor import EXIT_CODES, STEPS, exit_codes_text

    text = exit_codes_text()
    assert text.startswith("options 2, region 3, credentials 4, whoami 4 (advisory")
    assert list(EXIT_CODES) == [s.name for s in STEPS]
    for argv in (["--help"], ["doctor", "--help"]):
        assert text in " ".join(_help_of(argv).split())
    page = Path(__file__).resolve().parents[2] / "docs" / "reference" / "cli.md"
    readme = " ".join(page.read_text().split())
    assert text in readme
    from sqlalchemy_rds_iam.cli import ERROR_EXIT_CODES

    for cls, code in ERROR_EXIT_CODES:
        assert f"{code} {cls.__name__}" in readme or cls.__name__ == "RdsIamError"


def _help_of(argv: list[str]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(argv)
    return out.getvalue()


@pytest.mark.parametrize(("family", "present", "absent"), [
    ("postgresql", "GRANT rds_iam TO iamuser", "AWSAuthenticationPlugin"),
    ("mysql", "CREATE USER iamuser IDENTIFIED WITH AWSAuthenticationPlugin", "rds_iam"),
])
def test_login_checklist_fits_the_family(family: str, present: str, absent: str) -> None:
    from sqlalchemy_rds_iam.doctor import login_checklist

    text = login_checklist(family, "iamuser", "h", 5432, "us-east-1", "aws")
    assert present in text and absent not in text


@pytest.mark.parametrize(("family", "user"), [("postgresql", "postgres"), ("mysql", "admin")])
def test_login_checklist_never_makes_the_master_user_an_iam_user(family: str, user: str) -> None:
    from sqlalchemy_rds_iam.doctor import login_checklist

    text = login_checklist(family, user, "h", 5432, "us-east-1", "aws")
    assert f"TO {user}" not in text and f"CREATE USER {user}" not in text
    assert "master user" in text and "CREATE USER iam_app" in text


def test_a_multi_line_error_is_printed_on_one_line(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy_rds_iam import CredentialsError
    from sqlalchemy_rds_iam.credentials import BotocoreSource

    def refuse(self: object) -> None:
        raise CredentialsError("could not load AWS credentials:\n  SSO session expired\n")

    monkeypatch.setattr(BotocoreSource, "frozen", refuse)
    assert main(["token", PG]) == 4
    err = capsys.readouterr().err
    assert err == "sqlalchemy-rds-iam: error: could not load AWS credentials: SSO session expired\n"


@pytest.mark.usefixtures("aws_env")
def test_a_doctor_step_runs_alone(plaintext_server: int) -> None:
    from sqlalchemy_rds_iam.doctor import Failed, State, step_options, step_tcp, step_tls

    state = State(f"postgresql+psycopg2://iamuser@127.0.0.1:{plaintext_server}/app"
                  "?aws_region=us-east-1", timeout=2, whoami=False)
    assert "as iamuser to 127.0.0.1" in step_options(state)
    assert step_tcp(state) == f"connected to 127.0.0.1:{plaintext_server}"
    with pytest.raises(Failed, match="does not offer TLS"):
        step_tls(state)
    assert state.sock is not None
    state.sock.close()


@pytest.mark.usefixtures("aws_env")
def test_doctor_a_host_that_is_no_dns_name_is_a_dns_failure(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = doctor(capsys, f"postgresql+psycopg2://iamuser@{'é' * 70}/app?aws_region=us-east-1")
    assert (code, report["failed_step"]) == (5, "dns")
    assert "idna" in report["steps"][-1]["detail"]
