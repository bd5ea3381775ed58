"""``course lab`` (``make lab``): open the course in JupyterLab, notebooks as notebooks.

The course's notebooks are Jupytext percent ``.py`` files. Jupytext (pinned in
requirements.txt) brings the contents manager that reads and saves them as notebooks;
this command adds what is left, inside the course's virtualenv only:

- JupyterLab itself, pinned, installed on first use (the checks and the grader do not
  need it, so it stays out of requirements.txt);
- a settings override that makes "Jupytext Notebook" the default viewer for Python
  files, so a double click opens a lesson or an exercise as a notebook (right click,
  Open With, Editor still shows the text).

Nothing is written to the user's home folder: the override lives in the virtualenv's
JupyterLab settings folder (``<venv>/share/jupyter/lab/settings/overrides.json``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from course.layout import ROOT

JUPYTERLAB = "jupyterlab==4.6.6"
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
VIEWERS = {"python": "Jupytext Notebook"}


def overrides_path(prefix: Path | None = None) -> Path:
    return (prefix or Path(sys.prefix)) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def write_overrides(prefix: Path | None = None) -> Path:
    """Make Jupytext's notebook view the default for .py files, keeping other overrides."""
    path = overrides_path(prefix)
    settings: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            settings = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            settings = {}
    plugin = settings.setdefault(DOCMANAGER, {})
    plugin["defaultViewers"] = {**plugin.get("defaultViewers", {}), **VIEWERS}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


def lab_command(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}", *extra]


def ensure_jupyterlab() -> bool:
    if importlib.util.find_spec("jupyterlab") is not None:
        return True
    print(f"installing {JUPYTERLAB} into {sys.prefix} (first use only)", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", JUPYTERLAB],
                          check=False)
    return done.returncode == 0


def lab(args: argparse.Namespace) -> int:
    if not ensure_jupyterlab():
        print(f"could not install {JUPYTERLAB}; install it into this virtualenv and run "
              "`make lab` again", file=sys.stderr)
        return 1
    path = write_overrides()
    command = lab_command(list(args.lab_args))
    print(f"double click opens .py notebooks as notebooks (set in {path})")
    if args.dry_run:
        print(" ".join(command))
        return 0
    os.chdir(ROOT)
    os.execv(command[0], command)  # JupyterLab takes over this process (Ctrl-C stops it)


def register(sub: Any) -> None:
    p = sub.add_parser("lab", help="open the course in JupyterLab (installs it on first use)")
    p.add_argument("lab_args", nargs="*", help="extra arguments for jupyter lab")
    p.add_argument("--dry-run", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=lab)
