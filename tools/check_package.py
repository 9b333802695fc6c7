"""Check the package as pip users get it: build the sdist, the wheel from the sdist, install the
wheel into a fresh virtual environment, and look there.

Run by ``make package`` (part of ``make test``). Checks, in the fresh environment:
the ``rds_iam`` entry point is what ``create_engine`` finds; every ``*.pem`` of the source
``data`` directory is installed, byte-identical; ``sqlalchemy-rds-iam --help`` runs; the
wheel's metadata holds the LICENSE and no made-up project URL; ``py.typed`` ships. Dependencies
come from pip's cache and the configured index; the package itself only from the wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
    "connector": [type(iam).__name__, iam.region, iam.port, iam.ca_bundle],
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
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)  # noqa: S603
    if result.returncode:
        sys.exit(f"package check FAILED: {' '.join(command)}\n{result.stdout}{result.stderr}")
    return result


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"package check FAILED: {what}")
    print(f"  ok  {what}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable, help="builds and installs with it")
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

        env_dir = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=False).create(env_dir)
        python = env_dir / "bin" / "python"
        # the outer pip installs into the fresh environment (pip >= 22.3: --python)
        run(args.python, "-m", "pip", "--python", python, "install", "-q",
            "--disable-pip-version-check", f"{wheel}[mysql]")
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
    print(f"package check passed in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
