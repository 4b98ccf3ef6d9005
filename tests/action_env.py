"""Offline provisioning of action.yml's cached Python environment, for tests that run the action in a runner.

A clean CI machine has the project's own environment (with every dependency) but no network. action.yml reuses a
ready environment at `<RUNNER_TOOL_CACHE>/sgp-action/<key>` (sgp_action/toolcache.py), so a harness can provision
one before the runner starts: a virtual environment without pip whose site-packages holds a `.pth` line pointing at
this interpreter's site-packages, plus the ready marker. The action then runs exactly as it would on a runner where
an earlier job built the environment; the "create" path is tested separately with an empty requirements file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sgp_action.toolcache import CACHE_FOLDER, READY_MARKER

ROOT = Path(__file__).resolve().parent.parent


def environment_key(python: str, action_path: Path = ROOT) -> str:
    """The key action.yml computes for `python` and the action's requirements.txt."""
    env = {**os.environ, "PYTHONPATH": str(action_path)}
    done = subprocess.run(
        [python, "-m", "sgp_action.toolcache", str(action_path / "requirements.txt")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _purelib(python: str) -> str:
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([python, "-c", query], capture_output=True, text=True, check=True).stdout.strip()


def seed_environment(tool_cache: Path, python: str = sys.executable, action_path: Path = ROOT) -> Path:
    """Provision the environment the action will look for when `python` is its `python3`; returns its folder."""
    venv = tool_cache / CACHE_FOLDER / environment_key(python, action_path)
    if (venv / READY_MARKER).is_file():
        return venv
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    # A plain path line: the dependencies become importable, but not this checkout's editable sgp_action (its own
    # .pth files are not read), so the action's copy of the code is what runs.
    Path(_purelib(str(venv / "bin" / "python")), "sgp_action_seed.pth").write_text(_purelib(python) + "\n")
    (venv / READY_MARKER).touch()
    return venv
