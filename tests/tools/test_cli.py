"""The ``course`` command: one parser, its commands grouped by who runs them."""

from __future__ import annotations

import pytest

from course import cli


def test_help_groups_every_command_by_audience(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    positions = [shown.index(f"commands {audience}:") for audience in cli.AUDIENCES]
    assert positions == sorted(positions)
    for names in cli.AUDIENCES.values():
        for name in names:
            assert f"\n  {name} " in shown, f"{name} is not listed in course --help"


def test_each_audience_names_only_real_commands_once() -> None:
    parser = cli.build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    listed = [name for names in cli.AUDIENCES.values() for name in names]
    assert sorted(listed) == sorted(set(listed)), "a command is listed under two audiences"
    assert set(listed) == registered
