"""Subcommands of ``course``: each is a function that adds its parser to ``sub``.

A new tool adds one ``register_*`` function here (or imports one) and lists it in
``REGISTRY``; the handler it sets with ``set_defaults(handler=...)`` returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from course import ROOT

Subparsers = Any  # argparse's _SubParsersAction is private


def register_generate(sub: Subparsers) -> None:
    parser = sub.add_parser("generate", help="(maintainers) write exercises/ from solutions/")
    parser.add_argument("--check", action="store_true",
                        help="fail if solutions/ changed and exercises/ was not regenerated")
    parser.add_argument("--force", action="store_true",
                        help="overwrite edited exercises too, after copying them to backups/")
    parser.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from course.generate import (
        EditedExercises,
        GenerateError,
        learner_edits,
        stale_exercises,
        write_exercises,
    )

    try:
        if args.check:
            stale = stale_exercises()
            for item in stale:
                print(f"{item.path}: {item.reason}", file=sys.stderr)
            if stale:
                print("solutions/ changed and exercises/ was not regenerated: run "
                      "`python -m course generate`, then commit exercises/", file=sys.stderr)
                return 1
            edits = learner_edits()
            if edits:
                print(f"exercises/ is up to date with solutions/; {len(edits)} exercise(s) "
                      "edited since generated (learner work, left alone): "
                      + ", ".join(p.name for p in edits))
            else:
                print("exercises/ is up to date")
            return 0
        edits = learner_edits() if args.force else []
        for path in write_exercises(force=args.force):
            print(f"updated {path}")
        if edits:
            print(f"kept a copy of each edited exercise ({', '.join(p.name for p in edits)}) "
                  f"in {ROOT / 'backups'}/")
    except EditedExercises as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


from course import appendix, dev, lab, linkcheck, llm_server, release  # noqa: E402  (kept beside the list it feeds)
from course.grader import cli as grader_cli  # noqa: E402

REGISTRY: list[Callable[[Subparsers], None]] = [
    register_generate, appendix.register, dev.register, linkcheck.register, llm_server.register,
    grader_cli.register, release.register, lab.register,
]
