"""The ``course`` command: one entry point for learners, teachers and course authors.

Each subcommand lives in its own module, which adds its parser with ``register(sub)``
and sets ``handler``; this file lists them and groups them in ``--help`` by who runs them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from course import lab, llm_server
from course.authoring import appendix, dev, generate, linkcheck, release
from course.grader import cli as grader_cli
from course.grader.runner import skip_slow_imports

Handler = Callable[[argparse.Namespace], int]

REGISTRY: list[Callable[[Any], None]] = [
    grader_cli.register, lab.register, llm_server.register, release.register,
    generate.register, appendix.register, dev.register, linkcheck.register,
]

# Who runs each command; `course --help` lists them under these headings.
AUDIENCES: dict[str, tuple[str, ...]] = {
    "for learners": ("check", "progress", "lab", "serve"),
    "for teachers": ("grade", "grade-all", "bundle", "release"),
    "for course authors": ("generate", "appendix", "test", "book", "browser-check", "linkcheck"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Tools for Production Python for AI Engineering.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRY:
        register(sub)
    parser.epilog = _grouped_help(sub)
    return parser


def _grouped_help(sub: Any) -> str:
    """The commands under their audiences, in place of argparse's single flat list."""
    helps = {action.dest: action.help or "" for action in sub._choices_actions}
    sub._choices_actions.clear()  # argparse would list them all again, ungrouped
    unplaced = set(helps) - {name for names in AUDIENCES.values() for name in names}
    if unplaced:
        raise RuntimeError(f"add these commands to cli.AUDIENCES: {sorted(unplaced)}")
    width = max(map(len, helps)) + 2
    lines = []
    for audience, names in AUDIENCES.items():
        lines.append(f"commands {audience}:")
        lines += [f"  {name:<{width}}{helps[name]}" for name in names if name in helps]
        lines.append("")
    return "\n".join(lines) + "Run `course COMMAND --help` for a command's options."


def main(argv: Sequence[str] | None = None) -> int:
    skip_slow_imports()
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
