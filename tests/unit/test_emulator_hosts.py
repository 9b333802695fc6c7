"""The emulator's /etc/hosts lines: only its own are added and removed; dead ones go."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlalchemy_rds_iam.testing import hosts

#: Characters str.splitlines() breaks on: a line holds none of them.
BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
MACHINE = "127.0.0.1 localhost\n# a comment\n::1 ip6-localhost ip6-loopback\n10.0.0.5 db.internal\n"


def test_add_then_remove_restores_the_file_byte_for_byte(tmp_path: Path) -> None:
    etc = tmp_path / "hosts"
    etc.write_text(MACHINE)
    state = tmp_path / "emu"
    state.mkdir()
    hosts.add(state, ["a.rds.amazonaws.com", "b.on.aws"], etc)
    assert etc.read_text().startswith(MACHINE)
    assert hosts.owners(etc) == {str(state): ["a.rds.amazonaws.com", "b.on.aws"]}
    hosts.add(state, ["a.rds.amazonaws.com"], etc)  # a restart replaces its own line
    assert hosts.owners(etc) == {str(state): ["a.rds.amazonaws.com"]}
    hosts.remove(state, etc)
    assert etc.read_text() == MACHINE


def test_a_live_emulators_lines_stay_and_a_dead_ones_go(tmp_path: Path) -> None:
    etc = tmp_path / "hosts"
    etc.write_text(MACHINE)
    live, dead, me = tmp_path / "live", tmp_path / "dead", tmp_path / "me"
    live.mkdir()
    me.mkdir()
    hosts.add(live, ["live.example"], etc)
    dead.mkdir()
    hosts.add(dead, ["dead.example"], etc)
    dead.rmdir()  # its state dir is gone: it crashed without stopping
    hosts.add(me, ["me.example"], etc)
    assert set(hosts.owners(etc)) == {str(live), str(me)}
    hosts.remove(me, etc)
    assert set(hosts.owners(etc)) == {str(live)}
    assert etc.read_text().startswith(MACHINE)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=BREAKS),
                        max_size=40), max_size=8))
def test_other_lines_are_never_touched(lines: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        etc = Path(tmp) / "hosts"
        original = "".join(f"{line}\n" for line in lines if hosts.MARKER not in line)
        etc.write_text(original)
        state = Path(tmp)
        hosts.add(state, ["x.rds.amazonaws.com"], etc)
        hosts.remove(state, etc)
        assert etc.read_text() == original
