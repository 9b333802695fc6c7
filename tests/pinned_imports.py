"""What a plugin engine's first connect imports, pinned: a cold start pays for every module.

A fresh interpreter runs the same app twice over: without the plugin, then with it (see
:func:`plugin_imports`); the modules the second part adds are the plugin's doing. They must
be exactly :data:`PINNED` (ours) plus at most :data:`ALLOWED_OTHERS` (anything else, e.g.
``difflib`` or ``botocore``, is an addition to the cold start). A new module of this package
on the connect path, or one no longer on it, means updating :data:`PINNED` after checking
its cost with ``bench/imports.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping

#: This package's modules that a first connect with ``?plugin=rds_iam`` loads.
PINNED = frozenset({
    "sqlalchemy_rds_iam",
    "sqlalchemy_rds_iam.cabundle",
    "sqlalchemy_rds_iam.credentials",
    "sqlalchemy_rds_iam.credentials.base",
    "sqlalchemy_rds_iam.credentials.environment",
    "sqlalchemy_rds_iam.drivers",
    "sqlalchemy_rds_iam.drivers.postgresql",
    "sqlalchemy_rds_iam.drivers.rules",
    "sqlalchemy_rds_iam.endpoints",
    "sqlalchemy_rds_iam.errors",
    "sqlalchemy_rds_iam.memo",
    "sqlalchemy_rds_iam.options",
    "sqlalchemy_rds_iam.plugin",
    "sqlalchemy_rds_iam.sigv4",
    "sqlalchemy_rds_iam.target",
    "sqlalchemy_rds_iam.tls",
    "sqlalchemy_rds_iam.tokens",
    "sqlalchemy_rds_iam.transport",
})
#: Other modules it may add to what the app without the plugin loads: HMAC, for signing;
#: AWS's SnapStart runtime hooks where they are installed (Lambda's Python 3.12+ runtimes).
ALLOWED_OTHERS = frozenset({"hmac", "snapshot_restore_py"})
#: Modules that must never be on the connect path; a pinned list that named one is wrong.
NEVER = frozenset({
    "argparse", "boto3", "botocore", "configparser", "difflib", "http.client", "shlex",
    "sqlalchemy_rds_iam.cabundle_fetch", "sqlalchemy_rds_iam.cli", "sqlalchemy_rds_iam.doctor",
    "sqlalchemy_rds_iam.testing",
    "urllib.request",
})

_CHILD = """
import json, sys
import sqlalchemy as sa
{baseline}
before = set(sys.modules)
import sqlalchemy_rds_iam
{plugin}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def plugin_imports(baseline: str, plugin: str, env: Mapping[str, str]) -> set[str]:
    """Modules a fresh interpreter imports running ``plugin`` after ``baseline`` (the same
    app and driver without the plugin, through its own first connect).

    With an empty cache directory unless ``env`` names one: a bundle that ``ca update``
    stored on this machine would add the private store's checks (``cabundle_store``)."""
    code = _CHILD.format(baseline=baseline, plugin=plugin)
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                 "SQLALCHEMY_RDS_IAM_CACHE_DIR": cache, **env},
        )
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def drift(imported: set[str]) -> list[str]:
    """What differs from the pin, one line each: empty when the connect path is as pinned."""
    ours = {m for m in imported if m.split(".")[0] == "sqlalchemy_rds_iam"}
    others = imported - ours
    problems = []
    if ours - PINNED:
        problems.append(f"added to the connect path: {', '.join(sorted(ours - PINNED))}")
    if PINNED - ours:
        problems.append(f"no longer on the connect path: {', '.join(sorted(PINNED - ours))}")
    if others - ALLOWED_OTHERS:
        problems.append(f"other modules added to the connect path: "
                        f"{', '.join(sorted(others - ALLOWED_OTHERS))}")
    return problems


def report(problems: list[str]) -> str:
    return ("; ".join(problems) + ". Each module costs every cold start: load it where it is "
            "needed, or (if it must be on the connect path) update PINNED in "
            "tests/pinned_imports.py after measuring it with bench/imports.py")


#: A ``sitecustomize`` that imports ``difflib`` the moment ``sqlalchemy_rds_iam.options`` is
#: imported: as if that module had ``import difflib`` at its top again (the negative control).
DIFFLIB_ON_THE_CONNECT_PATH = '''
import sys

class _ImportDifflibWithOptions:
    def find_spec(self, name, path=None, target=None):
        if name == "sqlalchemy_rds_iam.options":
            import difflib
        return None

sys.meta_path.insert(0, _ImportDifflibWithOptions())
'''
