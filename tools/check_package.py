"""Check the package as pip users get it: build the sdist, the wheel from the sdist, install the
wheel into a fresh virtual environment, and look there.

Run by ``make package`` (part of ``make test``). Checks, in the fresh environment:
the ``rds_iam`` entry point is what ``create_engine`` finds; every ``*.pem`` of the source
``data`` directory is installed, byte-identical; ``sqlalchemy-rds-iam --help`` runs; the
wheel's metadata holds the LICENSE and no made-up project URL; ``py.typed`` ships; the sdist
holds ``examples/``, ``tests/`` and the docs sources. Then, as pip users would:

* "Try it locally" (docs/guides/testing-with-emulator.md, and README.md when it has the
  section): its shell commands as written (``pip install`` given the built wheel), then its
  Python code, against an emulator started by the fresh environment's command; the
  emulator's verifier must have accepted the logins on PostgreSQL and MariaDB. Needs root.
* The Lambda runner from the wheel on the sdist's ``examples/lambda``.
* The Lambda packaging recipe (docs/guides/lambda-packaging.md): ``pip install --platform
  manylinux2014_<machine> --only-binary=:all: --target`` into a layer directory, zipped; the
  sizes are printed, and the directory imports and builds an engine in a bare interpreter.

Dependencies come from pip's cache and the configured index; the package itself only from
the wheel.
"""

# ruff: noqa: S603, S607 -- runs the build, pip, bash and the fresh environment's commands
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sqlalchemy_rds_iam" / "data"
GUIDE = ROOT / "docs" / "guides" / "testing-with-emulator.md"
README = ROOT / "README.md"
#: What the sdist must hold for packagers who run the tests, and for the examples to travel.
SDIST_MUST_HOLD = (
    "examples/lambda/run_local.py",
    "examples/lambda/postgresql_function.py",
    "examples/alembic/alembic.ini",
    "tests/conftest.py",
    "tests/fakes.py",
    "tests/unit/test_plugin.py",
    "tests/integration/test_examples.py",
)

# Runs inside the fresh environment; prints one JSON document.
PROBE = r"""
import hashlib, json, sys
from importlib import metadata
from pathlib import Path
import sqlalchemy as sa
import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import UnsupportedDriverError, connector

dist = metadata.distribution("sqlalchemy-rds-iam")
package = Path(sqlalchemy_rds_iam.__file__).parent
points = [ep.value for ep in metadata.entry_points(group="sqlalchemy.plugins")
          if ep.name == "rds_iam"]
engine = sa.create_engine(
    "mysql+pymysql://iamuser@db.cluster-abc123.us-east-1.rds.amazonaws.com/app?plugin=rds_iam")
iam = connector(engine)
try:
    sa.create_engine("sqlite://?plugin=rds_iam")
    refused = None
except UnsupportedDriverError as exc:
    refused = type(exc).__name__
print(json.dumps({
    "package": str(package),
    "prefix": sys.prefix,
    "entry_points": points,
    "connector": [type(iam).__name__, iam.target.region, iam.target.port, iam.target.ca_bundle],
    "sqlite_refused_by": refused,
    "bundles": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((package / "data").glob("*.pem"))},
    "py_typed": (package / "py.typed").is_file(),
    "pam_module_source": (package / "testing" / "pam_rds_iam.c").is_file(),
}))
"""


def run(*argv: str | Path, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, output captured; on failure show it and stop."""
    command = [str(a) for a in argv]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if result.returncode:
        sys.exit(f"package check FAILED: {' '.join(command)}\n{result.stdout}{result.stderr}")
    return result


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"package check FAILED: {what}")
    print(f"  ok  {what}", flush=True)


def try_it_locally(path: Path) -> tuple[str, str] | None:
    """The shell block and the Python block of ``path``'s "Try it locally" section, or None."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    match = re.search(r"^## Try it locally\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        return None
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", match.group(1), re.M | re.S)
    shell = next((code for lang, code in blocks if lang in ("sh", "bash", "shell")), None)
    python = next((code for lang, code in blocks if lang == "python"), None)
    if shell is None or python is None:
        sys.exit(f"package check FAILED: {path}'s Try it locally lacks a shell or Python block")
    return shell, python


def _clean_env(env_dir: Path, state_dir: Path) -> dict[str, str]:
    """A user's shell in the fresh environment: no AWS credentials of ours, no config files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(env_dir),
        SQLALCHEMY_RDS_IAM_EMULATOR_DIR=str(state_dir),
        AWS_CONFIG_FILE=str(state_dir.with_name("no-aws-config")),
        AWS_SHARED_CREDENTIALS_FILE=str(state_dir.with_name("no-aws-credentials")),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def check_try_it_locally(
    outer: str, env_dir: Path, wheel: Path, state_dir: Path, work: Path
) -> None:
    """Run "Try it locally" as written, in the fresh environment; the verifier must agree."""
    sources = [(p, b) for p in (GUIDE, README) if (b := try_it_locally(p)) is not None]
    check(any(p == GUIDE for p, _ in sources), f"{GUIDE.relative_to(ROOT)} has Try it locally")
    env = _clean_env(env_dir, state_dir)
    cli = env_dir / "bin" / "sqlalchemy-rds-iam"
    for path, (shell, python) in sources:
        pip_line = re.compile(r"pip install '(sqlalchemy-rds-iam)\[([^\]]*)\]'")
        check(bool(pip_line.search(shell)), f"{path.name}: the pip install line names the extras")
        shell = pip_line.sub(lambda m: f"pip install '{wheel}[{m.group(2)}]'", shell)
        script = (
            "set -euo pipefail\n"
            # the fresh environment has no pip of its own: the outer one installs into it
            f'pip() {{ "{outer}" -m pip --python "{env_dir / "bin" / "python"}" '
            '--disable-pip-version-check -q "$@"; }\n'
            f"{shell}\npython - <<'TRY_IT_LOCALLY_EOF'\n{python}TRY_IT_LOCALLY_EOF\n"
        )
        offsets: dict[str, int] = {}
        status = subprocess.run([cli, "emulator", "status", "--json"], capture_output=True,
                                text=True, env=env)
        if status.returncode == 0:
            info = json.loads(status.stdout)
            offsets = {n: os.stat(s["verifier_log"]).st_size for n, s in info["servers"].items()}
        began = time.perf_counter()
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                              cwd=work, timeout=900)
        if proc.returncode:
            sys.exit(f"package check FAILED: {path.name}'s Try it locally:\n{script}\n"
                     f"{proc.stdout}{proc.stderr}")
        status = subprocess.run([cli, "emulator", "status", "--json"], capture_output=True,
                                text=True, env=env, check=True)
        info = json.loads(status.stdout)
        for name in ("postgresql", "mysql"):
            server = info["servers"][name]
            with open(server["verifier_log"], "rb") as fh:
                fh.seek(offsets.get(name, 0))
                verdicts = [json.loads(line) for line in fh.read().splitlines() if line.strip()]
            primary = info["identities"]["primary"]["access_key_id"]
            mine = [v for v in verdicts if v.get("access_key_id") == primary]
            check(bool(mine) and all(v["ok"] for v in mine),
                  f"{path.name}: Try it locally logged in to {name}, verified by the emulator "
                  f"({len(mine)} token(s) accepted)")
        printed = [line for line in proc.stdout.splitlines() if "RDS_IAM_" in line]
        print(f"  --  {path.name}'s Try it locally took {time.perf_counter() - began:.1f} s:\n"
              + "".join(f"        {line}\n" for line in printed), end="")


def check_lambda_runner(env_dir: Path, sdist: Path, state_dir: Path, work: Path) -> None:
    """The runner from the wheel, on the sdist's examples/lambda (what a pip user has)."""
    with tarfile.open(sdist) as tf:
        tf.extractall(work / "sdist", filter="data")
    (examples,) = (work / "sdist").glob("*/examples/lambda")
    proc = subprocess.run(
        [env_dir / "bin" / "python", "-m", "sqlalchemy_rds_iam.testing.lambda_local", "--dir",
         examples, "--function", "postgresql", "--invocations", "4", "--json"],
        capture_output=True, text=True, env=_clean_env(env_dir, state_dir), cwd=work,
        timeout=600,
    )
    if proc.returncode:
        sys.exit(f"package check FAILED: lambda_local:\n{proc.stdout}{proc.stderr}")
    (report,) = json.loads(proc.stdout)
    check(report["ok"] and report["logins_verified"] >= 2 and report["tokens_signed"] >= 2,
          "python -m sqlalchemy_rds_iam.testing.lambda_local on the sdist's examples/lambda: "
          f"{report['invocations']} invocations and a freeze, "
          f"{report['logins_verified']} logins verified")


#: Runs in a bare interpreter (-I -S: no site-packages, no PYTHONPATH) with only the layer.
LAYER_PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import psycopg2, sqlalchemy as sa, sqlalchemy_rds_iam
engine = sa.create_engine(
    "postgresql+psycopg2://iamuser@db.cluster-abc123.us-east-1.rds.amazonaws.com/app"
    "?plugin=rds_iam")
iam = sqlalchemy_rds_iam.connector(engine)
print(json.dumps({"package": sqlalchemy_rds_iam.__file__, "psycopg2": psycopg2.__file__,
                  "region": iam.target.region, "ca_bundle": iam.target.ca_bundle}))
"""


def check_lambda_layer(outer: str, wheel: Path, work: Path) -> None:
    """docs/guides/lambda-packaging.md's recipe: a layer for this machine's Python, zipped."""
    machine = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    layer = work / "layer"
    target = layer / "python"
    began = time.perf_counter()
    run(outer, "-m", "pip", "install", "-q", "--disable-pip-version-check",
        "--platform", f"manylinux2014_{machine}", "--implementation", "cp",
        "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
        "--only-binary=:all:", "--target", target, f"{wheel}[postgresql]")
    files = [f for f in target.rglob("*") if f.is_file()]
    unzipped = sum(f.stat().st_size for f in files)
    by_top: dict[str, int] = {}
    for f in files:
        top = f.relative_to(target).parts[0]
        by_top[top] = by_top.get(top, 0) + f.stat().st_size
    largest = sorted(by_top.items(), key=lambda item: -item[1])[:5]
    archive = Path(shutil.make_archive(str(work / "layer"), "zip", root_dir=layer))
    print(f"  --  layer for Python {sys.version_info.major}.{sys.version_info.minor} "
          f"manylinux2014_{machine} with [postgresql]: {unzipped / 1e6:.1f} MB unzipped, "
          f"{archive.stat().st_size / 1e6:.1f} MB zipped, {len(files)} files, built in "
          f"{time.perf_counter() - began:.1f} s; largest: "
          + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in largest))
    check(archive.stat().st_size < 50e6 and unzipped < 250e6,
          "the layer fits Lambda's limits (50 MB zipped upload, 250 MB unzipped)")
    bare = getattr(sys, "_base_executable", sys.executable)
    probe = json.loads(run(bare, "-I", "-S", "-c", LAYER_PROBE, target, cwd=str(work)).stdout)
    check(probe["package"].startswith(str(target)) and probe["psycopg2"].startswith(str(target))
          and probe["region"] == "us-east-1" and probe["ca_bundle"].startswith(str(target)),
          "the layer imports in a bare interpreter and create_engine(...?plugin=rds_iam) works")


def _emulator_possible() -> str | None:
    """Why the emulator cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("pg_ctlcluster") is None and not list(Path("/usr/lib/postgresql").glob("*")):
        return "PostgreSQL is not installed"
    if shutil.which("mariadbd") is None:
        return "MariaDB is not installed"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable, help="builds and installs with it")
    parser.add_argument("--skip-emulator", action="store_true",
                        help="leave out Try it locally and the Lambda runner")
    parser.add_argument("--skip-layer", action="store_true", help="leave out the Lambda layer")
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="package-check-") as tmp:
        out = Path(tmp) / "dist"
        # sdist first, then the wheel built from the unpacked sdist: proves the sdist complete
        run(args.python, "-m", "build", "--sdist", "--wheel", "--outdir", out, ROOT)
        (wheel,) = out.glob("*.whl")
        (sdist,) = out.glob("*.tar.gz")
        print(f"built {wheel.name} and {sdist.name}")

        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
            metadata = zf.read(meta_name).decode()
        check(any(n.endswith(".dist-info/licenses/LICENSE") for n in names),
              "LICENSE in the wheel's .dist-info/licenses/")
        check("License-File: LICENSE" in metadata and "License-Expression: Apache-2.0" in metadata,
              "METADATA: License-Expression Apache-2.0, License-File LICENSE")
        # No repository exists yet: no address rather than a made-up one.
        check("Project-URL" not in metadata, "METADATA: no Project-URL (none is real yet)")
        with tarfile.open(sdist) as tf:
            members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
        check({"LICENSE", "CHANGELOG.md", "README.md", "mkdocs.yml", "docs/index.md"} <= members,
              "sdist holds LICENSE, CHANGELOG.md, README.md and the docs sources")
        check(set(SDIST_MUST_HOLD) <= members,
              f"sdist holds examples/ and tests/ ({sum(m.startswith('tests/') for m in members)}"
              f" files under tests/, {sum(m.startswith('examples/') for m in members)} under "
              "examples/)")
        check(not any("__pycache__" in m or m.endswith(".pyc") for m in members),
              "sdist holds no bytecode")

        env_dir = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=False).create(env_dir)
        python = env_dir / "bin" / "python"
        # the outer pip installs into the fresh environment (pip >= 22.3: --python)
        run(args.python, "-m", "pip", "--python", python, "install", "-q",
            "--disable-pip-version-check", f"{wheel}[postgresql,mysql,testing]")
        probe = json.loads(run(python, "-c", PROBE, cwd=tmp).stdout)

        check(probe["package"].startswith(str(env_dir)), "the package imports from the wheel")
        check(probe["entry_points"] == ["sqlalchemy_rds_iam.plugin:RdsIamPlugin"],
              "one sqlalchemy.plugins entry point: rds_iam")
        check(probe["connector"][:3] == ["IamConnector", "us-east-1", 3306]
              and probe["connector"][3].startswith(str(env_dir)),
              "create_engine(...?plugin=rds_iam) installs the listener, bundle from the wheel")
        check(probe["sqlite_refused_by"] == "UnsupportedDriverError",
              "create_engine finds the plugin for any URL (sqlite refused by it)")
        shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in sorted(DATA.glob("*.pem"))}
        check(bool(shipped) and probe["bundles"] == shipped,
              f"every *.pem of the source data dir installed, byte-identical ({len(shipped)})")
        check(probe["py_typed"], "py.typed installed")
        check(probe["pam_module_source"], "the emulator's PAM module source installed")
        cli = env_dir / "bin" / "sqlalchemy-rds-iam"
        help_text = run(cli, "--help").stdout
        check(help_text.startswith("usage: sqlalchemy-rds-iam"), "sqlalchemy-rds-iam --help runs")

        if not args.skip_layer:
            check_lambda_layer(args.python, wheel, Path(tmp))
        why_not = "--skip-emulator" if args.skip_emulator else _emulator_possible()
        if why_not is not None:
            print(f"  --  Try it locally and the Lambda runner not run: {why_not}")
        else:
            # inside the 0700 TemporaryDirectory: the emulator links it (the servers cannot enter)
            state_dir = Path(tmp) / "emulator"
            try:
                check_try_it_locally(args.python, env_dir, wheel, state_dir, Path(tmp))
                check_lambda_runner(env_dir, sdist, state_dir, Path(tmp))
            finally:
                subprocess.run([cli, "emulator", "stop", "--state-dir", state_dir],
                               capture_output=True, check=False)
    print(f"package check passed in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
