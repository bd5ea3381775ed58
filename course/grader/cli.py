"""The grader's subcommands: ``grade``, ``grade-all``, ``check``, ``progress``, ``bundle``.

Exit status says whether grading worked, never whether the student passed: 0 when a
report was produced (whatever its score), 2 when the input could not be graded at all
(no such file, not a zip), 1 when the grader itself failed (the sandbox would not start,
the course's own tests would not collect).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from course.layout import ROOT, Layout

OK, GRADER_FAILED, BAD_INPUT = 0, 1, 2


def _limits_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits and layout")
    group.add_argument("--timeout", type=float, default=10.0,
                       help="seconds for each exercise's tests (default 10)")
    group.add_argument("--total-timeout", type=float, default=300.0,
                       help="seconds for a whole submission (default 300)")
    group.add_argument("--notebook-timeout", type=float, default=60.0,
                       help="seconds to run the notebook top to bottom (default 60)")
    group.add_argument("--memory", type=int, default=2048, help="MB of memory per process")
    group.add_argument("--processes", type=int, default=64, help="processes per run")
    group.add_argument("--total-memory", type=int, default=1024,
                       help="MB of memory for a whole run, its temporary files included "
                            "(default 1024; enforced where cgroups are usable)")
    group.add_argument("--cpus", type=float, default=1.0,
                       help="CPU cores a whole run may keep busy (default 1; with cgroups)")
    group.add_argument("--allow-network", action="store_true",
                       help="do not isolate the network (the default allows loopback only)")
    group.add_argument("--hidden", type=Path, default=None, metavar="DIR",
                       help="grader-only tests to add to the course's public ones "
                            "(see `course release --grader-out`)")
    group.add_argument("--course-root", type=Path, default=None, help=argparse.SUPPRESS)
    group.add_argument("--tests-dir", type=Path, default=None, help=argparse.SUPPRESS)


def options_from(args: argparse.Namespace, **extra: Any) -> Any:
    from course.grader.engine import Options
    from course.grader.sandbox import Limits

    limits = Limits(
        exercise_timeout=args.timeout, total_timeout=args.total_timeout,
        notebook_timeout=args.notebook_timeout, memory_mb=args.memory,
        processes=args.processes, total_memory_mb=args.total_memory, cpus=args.cpus,
        isolate_network=not args.allow_network,
    )
    return Options(limits=limits, **extra)


def course_from(args: argparse.Namespace) -> Any:
    from course.grader.layout import Course

    course = Course.at(args.course_root, args.tests_dir)
    hidden: Path | None = getattr(args, "hidden", None)
    if hidden is None:
        return course
    return Course.at(course.root, with_hidden_tests(course.tests, hidden))


def with_hidden_tests(public: Path, hidden: Path) -> Path:
    """A tests folder holding the public tests and, over them, the grader-only ones.

    ``hidden`` is laid out like ``tests/`` (``test_<slug>.py``, support folders such as
    ``mutants/``); a file there replaces the public file of the same name. The folder
    lives under the course's ``_build/`` so the manifest cache finds it again.
    """
    import hashlib
    import shutil

    if not hidden.is_dir():
        raise SystemExit(f"--hidden {hidden}: no such folder")
    digest = hashlib.sha256()
    for folder in (public, hidden):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    merged = Layout(public.parent).build / "grader-tests" / digest.hexdigest()[:16]
    if not merged.is_dir():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tools")
        staging = merged.with_name(merged.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(public, staging, ignore=ignore)
        shutil.copytree(hidden, staging, ignore=ignore, dirs_exist_ok=True)
        staging.rename(merged)
    return merged


def register(sub: Any) -> None:
    from course.grader.report import FORMATS

    p = sub.add_parser("grade", help="grade a submission: a notebook, a folder or a zip")
    p.add_argument("submission", type=Path)
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="same as --format json")
    p.add_argument("-o", "--output", type=Path, help="write the report here, not to stdout")
    p.add_argument("--chapter", action="append", default=[],
                   help="a chapter this assignment expects (missing ones score 0)")
    p.add_argument("--no-notebook-run", action="store_true",
                   help="skip the runs-top-to-bottom criterion")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="the table shows every failing test in full")
    _limits_args(p)
    p.set_defaults(handler=grade_command)

    p = sub.add_parser("grade-all", help="grade a class: every student folder, zip or notebook in DIR")
    p.add_argument("directory", type=Path)
    p.add_argument("--jobs", type=int, default=0, help="students at once (default: every core)")
    p.add_argument("--out", type=Path, default=Path("grading-output"),
                   help="where to write summary.csv, summary.json and each student's reports")
    p.add_argument("--chapter", action="append", default=[])
    p.add_argument("--no-notebook-run", action="store_true")
    _limits_args(p)
    p.set_defaults(handler=grade_all_command)

    p = sub.add_parser("check", help="check your exercises: the grader's verdict, before you submit")
    p.add_argument("chapter", nargs="?", help="a chapter slug, e.g. 01_classes (default: all)")
    p.add_argument("--exercise", action="append", default=[], help="only this exercise id")
    p.add_argument("--target", type=Path, default=None,
                   help="the folder or notebook to check (default: exercises/)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="every failing test in full: pytest's whole message, what it checks")
    _limits_args(p)
    p.set_defaults(handler=check_command)

    p = sub.add_parser("progress", help="list every exercise with its status")
    p.add_argument("--target", type=Path, default=None, help="default: exercises/")
    _limits_args(p)
    p.set_defaults(handler=progress_command)

    p = sub.add_parser("bundle", help="package the grader for a grading platform")
    p.add_argument("platform", choices=["gradescope"])
    p.add_argument("-o", "--output", type=Path, default=Path("gradescope-autograder.zip"))
    p.add_argument("--chapter", action="append", default=[],
                   help="the chapter(s) this assignment grades (default: all)")
    p.add_argument("--hidden", type=Path, default=None, metavar="DIR",
                   help="grader-only tests to bundle with the public ones")
    p.add_argument("--course-root", type=Path, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=bundle_command)


def _grade_or_fail(submission: Path, course: Any, options: Any) -> Any:
    from course.grader.discover import SubmissionError
    from course.grader.engine import GraderError, grade
    from course.grader.manifest import ManifestError

    try:
        return with_hints(grade(submission, course, options), course)
    except SubmissionError as exc:
        print(f"cannot grade {submission}: {exc}", file=sys.stderr)
        return BAD_INPUT
    except (GraderError, ManifestError) as exc:
        print(f"grading failed (a problem with the grader, not the submission): {exc}",
              file=sys.stderr)
        return GRADER_FAILED


def with_hints(report: Any, course: Any) -> Any:
    """The report, each failed test carrying its own hint from the course's manifest."""
    from course.grader import manifest

    tests = manifest.load(course)
    return report.attach_hints({t.nodeid: t.hint for t in tests.tests})


def grade_command(args: argparse.Namespace) -> int:
    from course.grader.report import render

    options = options_from(args, chapters=tuple(args.chapter),
                           run_notebook=not args.no_notebook_run)
    report = _grade_or_fail(args.submission, course_from(args), options)
    if isinstance(report, int):
        return report
    text = render(report, args.format, verbose=args.verbose)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"{report.submission}: {report.earned}/{report.points} -> {args.output}")
    else:
        sys.stdout.write(text)
    return OK


def grade_all_command(args: argparse.Namespace) -> int:
    from course.grader.batch import grade_all

    options = options_from(args, chapters=tuple(args.chapter),
                           run_notebook=not args.no_notebook_run)
    return grade_all(args.directory, args.out, course_from(args), options, args.jobs)


def _student_target(args: argparse.Namespace) -> Path:
    target: Path | None = args.target
    return target or Layout(course_from(args).root).exercises


def check_command(args: argparse.Namespace) -> int:
    from course.grader.report import table

    course = course_from(args)
    if args.chapter and args.chapter not in course.chapters:
        print(f"no chapter {args.chapter!r}; chapters: {', '.join(sorted(course.chapters))}",
              file=sys.stderr)
        return BAD_INPUT
    target = _student_target(args)
    if args.chapter and target.is_dir():
        found = [target / f"{args.chapter}{s}" for s in (".ipynb", ".py")
                 if (target / f"{args.chapter}{s}").is_file()]
        if not found:
            print(f"no {args.chapter}.py or .ipynb in {target}", file=sys.stderr)
            return BAD_INPUT
        target = max(found, key=lambda p: p.stat().st_mtime)
    options = options_from(args, exercises=tuple(args.exercise),
                           run_notebook=not args.exercise)
    report = _grade_or_fail(target, course, options)
    if isinstance(report, int):
        return report
    sys.stdout.write(table(report, verbose=args.verbose))
    return OK


def progress_command(args: argparse.Namespace) -> int:
    options = options_from(args, chapters=tuple(sorted(course_from(args).chapters)))
    report = _grade_or_fail(_student_target(args), course_from(args), options)
    if isinstance(report, int):
        return report
    for chapter in report.chapters:
        print(f"{chapter.slug}  {chapter.earned}/{chapter.points}")
        for ex in chapter.exercises:
            mark = {"passed": "[x]", "partial": "[~]"}.get(ex.status, "[ ]")
            print(f"  {mark} {ex.id:<32} {ex.earned}/{ex.points}  {ex.status}")
    print(f"\n{report.earned}/{report.points} points; `course check CHAPTER` shows what to fix.")
    return OK


def bundle_command(args: argparse.Namespace) -> int:
    from course.grader.bundle import write_gradescope_bundle

    root = (args.course_root or ROOT).resolve()
    tests = with_hidden_tests(Layout(root).tests, args.hidden) if args.hidden else None
    path = write_gradescope_bundle(root, args.output, tuple(args.chapter), tests)
    print(f"wrote {path}: upload it as the assignment's autograder (zip) on Gradescope")
    return OK
