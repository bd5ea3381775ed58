"""A report in four formats: a terminal table, JSON, Gradescope ``results.json``, JUnit XML.

All four say the same thing in the same words: per exercise, points earned and possible;
per failed test, what went wrong, where in the notebook, and the hint.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from course.grader.feedback import full_part, short_part
from course.grader.results import RUNS_ID, STATUS_TEXT, ExerciseResult, Report, TestVerdict

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
FORMATS = ("table", "json", "gradescope", "junit")
# Values Gradescope documents for its results.json; tests use them to validate our output.
GRADESCOPE_VISIBILITY = ("hidden", "after_due_date", "after_published", "visible")
GRADESCOPE_STATUS = ("passed", "failed")
MAX_LINES = 8  # of one test's message, unless --verbose
MAX_FAILURES = 3  # failing tests shown per exercise, unless --verbose


def render(report: Report, fmt: str, *, verbose: bool = False) -> str:
    if fmt == "table":
        return table(report, verbose=verbose)
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2) + "\n"
    if fmt == "gradescope":
        return json.dumps(gradescope(report), indent=2) + "\n"
    if fmt == "junit":
        return junit(report)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def exercise_label(ex: ExerciseResult) -> str:
    return "notebook runs top to bottom" if ex.id == RUNS_ID else ex.id


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.strip().splitlines())


def test_feedback(test: TestVerdict, verbose: bool = False) -> str:
    """One failed test, as a student reads it: what went wrong, then its own hint."""
    text = f"{test.name}: {STATUS_TEXT.get(test.status, test.status)}"
    message = (full_part if verbose else short_part)(test.message)
    if message.strip():
        lines = message.strip().splitlines()
        text += "\n" + _indent("\n".join(lines if verbose else lines[:MAX_LINES]), "    ")
    if verbose and test.doc:
        text += f"\n    checks: {test.doc}"
    if test.hint:
        text += f"\n    hint: {test.hint}"
    return text


def exercise_feedback(ex: ExerciseResult, verbose: bool = False) -> str:
    """Everything a student needs about one exercise: verdict, failures, hints."""
    head = f"{exercise_label(ex)}: {ex.earned}/{ex.points} ({ex.status})"
    if ex.status in ("passed", "not started") and not verbose:
        return head  # one line: nothing to fix yet, or nothing left to fix
    lines = [head]
    if ex.id == RUNS_ID:
        if ex.earned < ex.points and ex.note:
            lines.append(_indent(ex.note, "  "))
            lines.append(f"  hint: {ex.hint}" if ex.hint else "")
        return "\n".join(line for line in lines if line)
    failures = ex.failures()
    shown = failures if verbose else failures[:MAX_FAILURES]
    for test in shown:
        lines.append("  - " + test_feedback(test, verbose).replace("\n", "\n  "))
    if len(failures) > len(shown):
        lines.append(f"  ... and {len(failures) - len(shown)} more failing test(s) "
                     "(--verbose lists them all)")
    if ex.earned < ex.points and ex.hint and not any(t.hint for t in failures):
        lines.append(f"  hint: {ex.hint}")  # a report made without the per-test hints
    return "\n".join(lines)


def next_step(report: Report) -> str:
    """The last line of a report: the one thing to do next."""
    if report.points and report.earned == report.points:
        return "Next: nothing to fix; every exercise here earns full marks."
    for chapter in report.chapters:
        if chapter.file is None:
            continue
        if chapter.not_started and chapter.exercises:
            first = chapter.exercises[0]
            return (f"Next: start with {exercise_label(first)} in {chapter.file}: replace its "
                    "`raise NotImplementedError`, save, and check again.")
        for ex in chapter.exercises:
            if ex.status == "not started" and ex.id != RUNS_ID:
                return (f"Next: start with {ex.id} in {chapter.file}: replace its "
                        f"`raise NotImplementedError`, save, and check again.")
            failing = ex.failures()
            if failing:
                return (f"Next: fix {failing[0].name} ({ex.id}) as its message and hint say, "
                        "save, and check again; add --verbose for the full details.")
            if ex.id == RUNS_ID and ex.earned < ex.points and ex.status != "not started":
                return (f"Next: restart the kernel of {chapter.file} and run all cells; "
                        "fix the first cell that fails.")
    if report.problems or any(c.file is None for c in report.chapters):
        return "Next: submit the notebooks listed above (the ! lines say what is missing)."
    return "Next: check again after your next change."


def table(report: Report, *, verbose: bool = False) -> str:
    out = [f"Submission: {report.submission}"]
    out += [f"  ! {p}" for p in report.problems]
    for chapter in report.chapters:
        out.append("")
        if chapter.not_started and not verbose:
            out.append(f"{chapter.slug}  ({chapter.file})  {chapter.earned}/{chapter.points}  "
                       "not started")
            continue
        out.append(f"{chapter.slug}  ({chapter.file or 'not submitted'})  "
                   f"{chapter.earned}/{chapter.points}")
        out += [f"  ! {p}" for p in chapter.problems]
        width = max([len(exercise_label(e)) for e in chapter.exercises] + [8])
        out.append(f"  {'exercise'.ljust(width)}  points  status")
        for ex in chapter.exercises:
            points = f"{ex.earned}/{ex.points}"
            out.append(f"  {exercise_label(ex).ljust(width)}  {points.rjust(6)}  {ex.status}")
        todo = [e for e in chapter.exercises
                if e.earned < e.points and (verbose or e.status != "not started")]
        if todo:
            out.append("")
            out.append("  What to look at:")
            for ex in todo:
                out.append("  " + exercise_feedback(ex, verbose).replace("\n", "\n  "))
    out.append("")
    out.append(f"Total: {report.earned}/{report.points}")
    if report.sandbox:
        out.append("Sandbox: " + "; ".join(report.sandbox))
    out.append(next_step(report))
    return "\n".join(out) + "\n"


def gradescope(report: Report) -> dict[str, Any]:
    """Gradescope's ``results.json``: one Gradescope test per exercise."""
    tests = []
    number = 0
    for chapter in report.chapters:
        for ex in chapter.exercises:
            number += 1
            tests.append({
                "name": f"{chapter.slug}: {exercise_label(ex)}",
                "number": str(number),
                "score": ex.earned,
                "max_score": ex.points,
                "status": "passed" if ex.earned == ex.points else "failed",
                "output": exercise_feedback(ex),
                "visibility": "visible",
            })
    summary = [f"Score: {report.earned}/{report.points}"]
    summary += report.problems
    summary += [p for c in report.chapters for p in c.problems]
    return {
        "score": report.earned,
        "execution_time": round(report.seconds, 1),
        "output": "\n".join(summary),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def junit(report: Report) -> str:
    """JUnit XML: a testsuite per chapter, a testcase per graded test (and per nbval run)."""
    root = ET.Element("testsuites", name=report.submission)
    total = failures = 0
    for chapter in report.chapters:
        suite = ET.SubElement(root, "testsuite", name=chapter.slug)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="score", value=str(chapter.earned))
        ET.SubElement(props, "property", name="max_score", value=str(chapter.points))
        cases = failed = 0
        for ex in chapter.exercises:
            runs = [TestVerdict(RUNS_ID, RUNS_ID, RUNS_ID, ex.points,
                                "passed" if ex.earned == ex.points else "failed", ex.note)] \
                if ex.id == RUNS_ID else ex.tests
            for test in runs:
                cases += 1
                case = ET.SubElement(suite, "testcase", classname=f"{chapter.slug}.{ex.id}",
                                     name=_NOT_XML.sub("?", test.name), time="0")
                ET.SubElement(ET.SubElement(case, "properties"), "property",
                              name="points", value=f"{test.earned}/{test.points}")
                if test.status != "passed":
                    failed += 1
                    failure = ET.SubElement(case, "failure",
                                            message=STATUS_TEXT.get(test.status, test.status),
                                            type=test.status)
                    hint = test.hint or ex.hint
                    text = full_part(test.message) + (f"\nhint: {hint}" if hint else "")
                    failure.text = _NOT_XML.sub("?", text)
        suite.set("tests", str(cases))
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total += cases
        failures += failed
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
