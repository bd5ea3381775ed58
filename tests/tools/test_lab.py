"""``course lab``: JupyterLab opens the course's .py notebooks as notebooks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from course.lab import DOCMANAGER, lab_command, overrides_path, write_overrides
from course.layout import ROOT


def test_python_files_open_as_jupytext_notebooks_and_other_settings_stay(tmp_path: Path) -> None:
    path = overrides_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({DOCMANAGER: {"defaultViewers": {"markdown": "Markdown Preview"}},
                                "@jupyterlab/apputils-extension:themes": {"theme": "dark"}}))
    write_overrides(tmp_path)
    settings = json.loads(path.read_text())
    assert settings[DOCMANAGER]["defaultViewers"] == {
        "markdown": "Markdown Preview", "python": "Jupytext Notebook"}
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "dark"}


def test_lab_serves_the_course_root() -> None:
    assert f"--ServerApp.root_dir={ROOT}" in lab_command([])


def test_jupytext_brings_its_contents_manager_and_lab_extension() -> None:
    """What makes a .py file a notebook in JupyterLab is installed with the course."""
    prefix = Path(sys.prefix)
    assert (prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "jupytext.json").is_file()
    assert (prefix / "share" / "jupyter" / "labextensions" / "jupyterlab-jupytext").is_dir()


def test_make_lab_is_listed() -> None:
    done = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert "course lab" in done.stdout
