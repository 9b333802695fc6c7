"""Finding 1 of issue 20: ``sqlalchemy-rds-iam psql``/``mysql`` and the user's environment.

libpq reads a service file (``PGSERVICE``, ``PGSERVICEFILE``, ``~/.pg_service.conf``) and
``PG*`` variables; one that says ``host=<a plaintext server> sslmode=disable`` used to
receive the token in clear. Here every such variable points at a recording plaintext
server, and the command must still log in to the verified emulator server while the
recorder gets nothing; the positive control is libpq itself, with the same environment and
the token in ``PGPASSWORD``, delivering the token to the recorder.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sqlalchemy_rds_iam.cabundle import SHIPPED_CA_BUNDLE
from sqlalchemy_rds_iam.cli import main
from sqlalchemy_rds_iam.testing.info import EmulatorInfo
from tests.fakes import RecordingServer, make_pki

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
PG = f"postgresql+psycopg2://iamuser@{RDS}/app"
MY = f"mysql+pymysql://iamuser@{RDS}/app"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sqlalchemy_rds_iam.cli", *args],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def plaintext_pg(tmp_path: Path) -> Iterator[RecordingServer]:
    server = RecordingServer("postgresql", "plain", make_pki(tmp_path / "pki"))
    try:
        yield server
    finally:
        server.close()


def hostile_environment(tmp_path: Path, port: int) -> dict[str, str]:
    """Every libpq variable and service file pointed at the plaintext recorder."""
    service = (f"[dev]\nhost=127.0.0.1\nhostaddr=127.0.0.1\nport={port}\nsslmode=disable\n"
               "gssencmode=prefer\nuser=iamuser\ndbname=app\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pg_service.conf").write_text(service)
    (tmp_path / "services.conf").write_text(service)
    return {
        "HOME": str(home), "PGSERVICE": "dev", "PGSERVICEFILE": str(tmp_path / "services.conf"),
        "PGHOST": "127.0.0.1", "PGHOSTADDR": "127.0.0.1", "PGPORT": str(port),
        "PGSSLMODE": "disable", "PGREQUIRESSL": "0", "PGGSSENCMODE": "prefer",
        "PGSSLROOTCERT": "/nonexistent.pem", "PGUSER": "iamuser", "PGDATABASE": "app",
        "PGPASSFILE": str(tmp_path / "pgpass"), "SSLKEYLOGFILE": str(tmp_path / "keys.log"),
    }


@pytest.mark.integration
@pytest.mark.usefixtures("rds_iam_aws_env")
def test_psql_ignores_a_hostile_service_file_and_pg_variables(
    rds_iam_emulator: EmulatorInfo, plaintext_pg: RecordingServer, tmp_path: Path
) -> None:
    info = rds_iam_emulator.postgresql
    env = {**os.environ, **hostile_environment(tmp_path, plaintext_pg.port)}
    offset = info.log_offset()
    result = cli("psql", info.url(), "--", "-Atc", "SELECT current_user", env=env)
    assert (result.returncode, result.stdout.strip()) == (0, "iamuser"), result.stderr
    assert [v.ok for v in info.verifications(offset) if v.user == "iamuser"][-1:] == [True]
    assert plaintext_pg.take() == b"" and plaintext_pg.connections == 0
    keys = tmp_path / "keys.log"  # Python's create_default_context writes its header line
    assert not keys.exists() or "SECRET" not in keys.read_text()

    # Positive control: libpq with that environment sends the token to the recorder.
    token = cli("token", info.url(), env=env).stdout.strip()
    assert token.startswith(f"{info.host}:{info.port}/?Action=connect")
    subprocess.run(["psql", "-Atc", "SELECT 1"], env={**env, "PGPASSWORD": token},
                   capture_output=True, timeout=30)
    assert plaintext_pg.got_token()


@pytest.mark.integration
@pytest.mark.usefixtures("rds_iam_aws_env")
def test_psql_offers_the_token_to_its_target_only(
    rds_iam_emulator: EmulatorInfo, plaintext_pg: RecordingServer
) -> None:
    """Inside psql, ``\\connect`` to another server and a ``\\!`` shell command get no
    token: it is in a password file for the target's login only, not in ``PGPASSWORD``
    (which libpq offers to every server). Control: psql with ``PGPASSWORD``, as this command
    started it before, sends the token to the recorder on the same ``\\connect``."""
    info = rds_iam_emulator.postgresql
    elsewhere = (f"\\connect 'host=127.0.0.1 port={plaintext_pg.port} sslmode=disable "
                 "user=iamuser dbname=app'")
    token = cli("token", info.url()).stdout.strip()
    assert token.startswith(f"{info.host}:{info.port}/?Action=connect")
    result = cli("psql", info.url(), "--", "-At", "-c", "SELECT current_user",
                 "-c", "\\! env", "-c", elsewhere)
    assert result.stdout.splitlines()[:1] == ["iamuser"], result.stderr
    assert "X-Amz-Signature" not in result.stdout and "PGPASSWORD" not in result.stdout
    assert "PGPASSFILE=" in result.stdout  # the shell escape ran, and saw only the path
    path = next(line for line in result.stdout.splitlines() if line.startswith("PGPASSFILE="))
    assert not os.path.exists(path.split("=", 1)[1])  # removed when psql exited
    assert plaintext_pg.connections >= 1 and not plaintext_pg.got_token()

    subprocess.run(["psql", "-At", "-c", "SELECT 1", "-c", elsewhere],
                   env={**os.environ, "PGPASSWORD": token}, capture_output=True, timeout=30)
    assert plaintext_pg.got_token()


@pytest.mark.integration
@pytest.mark.usefixtures("rds_iam_aws_env")
def test_psql_print_in_the_documented_order_prints(rds_iam_emulator: EmulatorInfo,
                                                   plaintext_pg: RecordingServer) -> None:
    result = cli("psql", rds_iam_emulator.postgresql.url(), "--print")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("env -u PGSERVICE ") and "X-Amz-Signature" not in result.stdout


@pytest.mark.integration
@pytest.mark.usefixtures("rds_iam_aws_env")
def test_mysql_ignores_option_files_and_variables_that_point_elsewhere(
    rds_iam_emulator: EmulatorInfo, tmp_path: Path
) -> None:
    info = rds_iam_emulator.mysql
    printed = cli("mysql", info.url(), "--print")  # the documented order prints
    assert printed.returncode == 0 and " --no-defaults " in printed.stdout, printed.stderr
    assert "X-Amz-Signature" not in printed.stdout
    recorder = RecordingServer("mysql", "plain", make_pki(tmp_path / "pki"))
    try:
        home = tmp_path / "home"
        home.mkdir()
        (home / ".my.cnf").write_text(f"[client]\nhost=127.0.0.1\nport={recorder.port}\n"
                                      "protocol=tcp\nskip-ssl\n")
        env = {**os.environ, "HOME": str(home), "MYSQL_HOST": "127.0.0.1",
               "MYSQL_TCP_PORT": str(recorder.port)}
        result = cli("mysql", info.url(), "--", "-N", "-e",
                     "SELECT SUBSTRING_INDEX(USER(), '@', 1)", env=env)
        assert (result.returncode, result.stdout.strip()) == (0, "iamuser"), result.stderr
        assert recorder.take() == b"" and recorder.connections == 0
        # Positive control: the client itself, reading that ~/.my.cnf, sends the token there.
        token = cli("token", info.url(), env=env).stdout.strip()
        client = "mariadb" if shutil.which("mariadb") else "mysql"
        subprocess.run([client, "-N", "-e", "SELECT 1"], env={**env, "MYSQL_PWD": token},
                       capture_output=True, timeout=30)
        assert recorder.got_token()
    finally:
        recorder.close()


# -- offline: what the children would get --------------------------------------------------

@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("mode", ["require", "prefer", "allow", "disable", "verify-nothing"])
def test_psql_refuses_the_sslmodes_create_engine_refuses(mode: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["psql", f"{PG}?sslmode={mode}", "--print"]) == 2
    assert f"sslmode={mode}" in capsys.readouterr().err


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("argument", [
    ["-h", "evil"], ["-hevil"], ["--host=evil"], ["--ho", "evil"], ["-p", "1"], ["-U", "admin"],
    ["-d", "host=evil sslmode=disable"], ["--dbname=service=dev"], ["--db", "x"],
    ["-Atd", "x"], ["-c", "select 1", "-h", "evil"],
])
def test_psql_refuses_client_arguments_that_move_the_connection(
    argument: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["psql", PG, "--print", "--", *argument]) == 2
    assert "refusing the psql argument" in capsys.readouterr().err


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("argument", [
    ["-c", "-h"], ["-c", "select 1"], ["-At"], ["--csv"], ["-v", "ON_ERROR_STOP=1"], ["--", "-h"],
    ["-f", "-"], ["-X", "--echo-all"],
])
def test_psql_passes_other_client_arguments(argument: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["psql", PG, "--print", "--", *argument]) == 0, capsys.readouterr().err


@pytest.mark.usefixtures("aws_env")
def test_a_database_name_cannot_add_a_conninfo_keyword(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["psql", f"postgresql://iamuser@{RDS}/x%20host%3Devil%20sslmode%3Ddisable",
                 "--print"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    dbname = next(a for a in argv if a.startswith("--dbname="))
    # SQLAlchemy 2.1 decodes the URL's database name (then it is quoted as one value);
    # 2.0 keeps it as written (one value with no space). Either way: no keyword added.
    database = ("'x host=evil sslmode=disable'" if sa.__version__ >= "2.1"
                else "x%20host%3Devil%20sslmode%3Ddisable")
    assert dbname == (f"--dbname=host={RDS} port=5432 user=iamuser dbname={database} "
                      f"sslmode=verify-full sslrootcert={SHIPPED_CA_BUNDLE} gssencmode=disable")


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("argument", [
    ["-h", "evil"], ["--host=evil"], ["-P1"], ["--port", "1"], ["-uroot"], ["--user=root"],
    ["--socket=/tmp/s"], ["--protocol=socket"], ["--skip-ssl"], ["--ssl=0"], ["--ssl-mode=DISABLED"],
    ["--disable-ssl-verify-server-cert"], ["--defaults-file=/tmp/x"], ["--login-path=x"],
    ["--loose-ssl-ca=/tmp/x"], ["--ho=evil"], ["--tls-version=TLSv1"], ["--plugin-dir=/tmp"],
])
def test_mysql_refuses_client_arguments_that_move_or_weaken(
    argument: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mysql", MY, "--print", "--", *argument]) == 2
    assert "argument" in capsys.readouterr().err


@pytest.mark.parametrize("position", ["before", "after", "after --"])
def test_print_in_any_position(position: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = {"before": ["mysql", "--print", MY], "after": ["mysql", MY, "--print"],
            "after --": ["mysql", MY, "--print", "--", "-N"]}[position]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "MYSQL_PWD=\"$(sqlalchemy-rds-iam token" in out and "--print" not in out


def test_the_password_file_is_private_escaped_and_removed() -> None:
    from sqlalchemy_rds_iam.clients import password_file

    with password_file("db.example", "5432", "ia:m\\user", "h:5432/?Action=connect&X=1") as path:
        directory = os.path.dirname(path)
        assert os.stat(directory).st_mode & 0o777 == 0o700
        assert os.stat(path).st_mode & 0o777 == 0o600
        with open(path) as file:
            assert file.read() == "db.example:5432:*:ia\\:m\\\\user:h\\:5432/?Action=connect&X=1\n"
    assert not os.path.exists(directory)


def test_child_environment_drops_every_moving_variable() -> None:
    from sqlalchemy_rds_iam.clients import child_environment, psql_command

    hostile = {"PGSERVICE": "x", "PGSERVICEFILE": "x", "PGHOST": "x", "PGHOSTADDR": "x",
               "PGSSLMODE": "x", "PGSSLROOTCERT": "x", "PGSSLNEGOTIATION": "x",
               "PGSSLFUTUREOPTION": "x", "PGREQUIRESSL": "x", "PGGSSENCMODE": "x",
               "PGPASSFILE": "x", "PGPORT": "x", "PGUSER": "x", "PGDATABASE": "x",
               "PGPASSWORD": "old", "SSLKEYLOGFILE": "x", "POSIXLY_CORRECT": "1"}
    kept = {"PATH": "/usr/bin", "PGAPPNAME": "app", "PGCONNECT_TIMEOUT": "5", "PGOPTIONS": "-c x=1"}
    command = psql_command({"host": RDS}, [])
    assert "token" not in " ".join(command.argv)
    assert child_environment({**hostile, **kept}, command, "TOKEN") == {**kept, "PGPASSWORD": "TOKEN"}
