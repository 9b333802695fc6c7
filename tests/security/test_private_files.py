"""Finding 7 of issue 20: CA files another local user planted are not trusted.

Bundles we write (``ca update``'s stores, the combined ``combined-<sha>.pem``) go only into
a directory of this user's with mode 0700 (created so); a stored bundle in a directory or
file another account could write is refused, and a combined file whose content does not
hash to its name is written anew. "Another user" is uid 65534 (nobody): the tests run as
root, whom no permission stops, so ownership is what the code must check.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from sqlalchemy_rds_iam import RdsIamError, TrustStoreError, cabundle
from sqlalchemy_rds_iam.cabundle import COMBINED, SHIPPED_DIR, TEST_SEAM_ENV, bundle_path
from sqlalchemy_rds_iam.cli import main

NOBODY = 65534
GLOBAL = (SHIPPED_DIR / "global-bundle.pem").read_bytes()
PLANTED = (SHIPPED_DIR / "china-bundle.pem").read_bytes()  # any CA the attacker controls


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "home" / ".cache" / "sqlalchemy-rds-iam"
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(directory))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir(mode=0o1777)
    monkeypatch.setattr(tempfile, "tempdir", None)
    return directory


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ca_update_creates_the_cache_directory_0700(cache: Path) -> None:
    assert main(["ca", "update", "--from", SHIPPED_DIR.as_uri()]) == 0
    assert mode(cache) == 0o700 and os.stat(cache).st_uid == os.geteuid()
    assert bundle_path("rds-aws") == str(cache / "global-bundle.pem")


def test_an_own_directory_readable_by_others_is_tightened(cache: Path) -> None:
    cache.mkdir(parents=True, mode=0o755)
    os.chmod(cache, 0o755)  # noqa: S103 (an older version's mkdir under umask 022)
    cabundle.update(SHIPPED_DIR.as_uri())
    assert mode(cache) == 0o700


@pytest.mark.parametrize("how", ["world-writable", "group-writable", "owned by nobody", "a link"])
def test_ca_update_refuses_a_directory_others_can_write(cache: Path, tmp_path: Path,
                                                       how: str) -> None:
    if how == "a link":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        cache.parent.mkdir(parents=True)
        cache.symlink_to(elsewhere)
    else:
        cache.mkdir(parents=True)
        os.chmod(cache, {"world-writable": 0o777, "group-writable": 0o770}.get(how, 0o700))
        if how == "owned by nobody":
            os.chown(cache, NOBODY, NOBODY)
    with pytest.raises(RdsIamError, match="refusing to write CA bundles"):
        cabundle.update(SHIPPED_DIR.as_uri())
    assert not list((tmp_path / "elsewhere").glob("*")) if how == "a link" else True
    assert main(["ca", "update", "--from", SHIPPED_DIR.as_uri()]) == 1


@pytest.mark.parametrize("how", ["file owned by nobody", "file world-writable",
                                 "directory world-writable", "directory owned by nobody"])
def test_a_planted_stored_bundle_is_refused(cache: Path, how: str) -> None:
    cache.mkdir(parents=True, mode=0o700)
    planted = cache / "global-bundle.pem"
    planted.write_bytes(PLANTED)
    os.chmod(planted, 0o644)
    if how == "file owned by nobody":
        os.chown(planted, NOBODY, NOBODY)
    elif how == "file world-writable":
        os.chmod(planted, 0o666)  # noqa: S103 (the attack)
    elif how == "directory world-writable":
        os.chmod(cache, 0o777)  # noqa: S103 (the attack)
    else:
        os.chown(cache, NOBODY, NOBODY)
    with pytest.raises(TrustStoreError, match="refusing the stored CA bundle"):
        bundle_path("rds-aws")
    import sqlalchemy as sa

    with pytest.raises(TrustStoreError):
        sa.create_engine("postgresql+psycopg2://u@db.cluster-abc123.us-east-1.rds.amazonaws.com"
                         "/app?plugin=rds_iam")


def test_the_positive_control_a_private_stored_bundle_is_used(cache: Path) -> None:
    cache.mkdir(parents=True, mode=0o700)
    (cache / "global-bundle.pem").write_bytes(GLOBAL)
    assert bundle_path("rds-aws") == str(cache / "global-bundle.pem")


def _combined() -> tuple[str, bytes]:
    """The combined file's name and content for the stored parts."""
    import hashlib

    pem = b"".join(cabundle.stored_bundle(name).read_bytes().rstrip(b"\n") + b"\n"
                   for name in ("rds-aws", "amazon-roots"))
    return f"combined-{hashlib.sha256(pem).hexdigest()[:16]}.pem", pem


@pytest.mark.parametrize("how", ["other content", "owned by nobody", "a link"])
def test_a_planted_combined_file_is_written_anew(cache: Path, tmp_path: Path, how: str) -> None:
    cabundle.update(SHIPPED_DIR.as_uri())  # stored parts: the combined file is ours to write
    name, expected = _combined()
    target = cache / name
    if how == "a link":
        (tmp_path / "planted.pem").write_bytes(PLANTED)
        target.symlink_to(tmp_path / "planted.pem")
    else:
        target.write_bytes(PLANTED if how == "other content" else expected)
        if how == "owned by nobody":
            os.chown(target, NOBODY, NOBODY)
    assert bundle_path(COMBINED) == str(target)
    assert not target.is_symlink() and os.stat(target).st_uid == os.geteuid()
    assert target.read_bytes() == expected
    assert (tmp_path / "planted.pem").read_bytes() == PLANTED if how == "a link" else True


def test_the_tmp_fallback_is_a_private_per_user_directory(tmp_path: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(blocker / "cache"))
    stand_in = tmp_path / "stand-in.pem"
    stand_in.write_bytes(GLOBAL)
    monkeypatch.setenv(TEST_SEAM_ENV, json.dumps({"rds-aws": str(stand_in)}))
    # another user got there first with the shared name: not ours, not used
    shared = tmp_path / "tmp" / "sqlalchemy-rds-iam"
    shared.mkdir(mode=0o777)
    os.chown(shared, NOBODY, NOBODY)
    combined = Path(bundle_path(COMBINED))
    assert combined.parent == tmp_path / "tmp" / f"sqlalchemy-rds-iam-{os.geteuid()}"
    assert mode(combined.parent) == 0o700
    # and if that one is taken by someone else too, nothing is written or trusted
    other = combined.parent
    for f in other.iterdir():
        f.unlink()
    os.chown(other, NOBODY, NOBODY)
    with pytest.raises(RdsIamError, match="cannot write the combined CA bundle"):
        bundle_path(COMBINED)
