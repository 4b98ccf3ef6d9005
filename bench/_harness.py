"""Shared set-up for the run benchmarks: a consumer repository, an in-process emulator and a child `run`.

The emulator runs in the benchmark's own process so its records (build log schedule, deployment timeline, request
arrivals) can be read with the same monotonic clock the child's output is stamped with (CLOCK_MONOTONIC is
system-wide on Linux).
"""

from __future__ import annotations

import compileall
import json
import os
import sys
import sysconfig
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sgp_action.demo import demo_environment, prepare_repository, pull_request_event  # noqa: E402
from sgp_action.emulator import EmulatorConfig, EmulatorServer  # noqa: E402

API_KEY, ACCOUNT = "bench-key", "bench-account"


def start_emulator(**overrides: Any) -> tuple[Any, list[tuple[float, str, str]]]:
    """An emulator server plus a list it appends (monotonic arrival, method, path) to for every API request."""
    server = EmulatorServer(EmulatorConfig(api_key=API_KEY, account_id=ACCOUNT, **overrides)).start()
    arrivals: list[tuple[float, str, str]] = []
    original = server.store.record_request

    def stamped(entry: dict[str, Any]) -> None:
        arrivals.append((time.monotonic(), str(entry.get("method", "")), str(entry.get("path", ""))))
        original(entry)

    server.store.record_request = stamped
    return server, arrivals


def workspace(workdir: Path, url: str, **inputs: str) -> tuple[Path, dict[str, str]]:
    """A consumer repository with the sample agent and the environment of a `run` child for a pull request."""
    repo, head_sha = prepare_repository(workdir)
    event_path = workdir / "event.json"
    event_path.write_text(json.dumps(pull_request_event(head_sha)), encoding="utf-8")
    for name in ("github_output", "step_summary.md"):
        (workdir / name).write_text("", encoding="utf-8")
    env = demo_environment(
        os.environ, workdir=workdir, repo=repo, event_path=event_path, url=url, api_key=API_KEY, account_id=ACCOUNT
    )
    env["PYTHONPATH"] = str(ROOT)
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    return repo, env


def action_python(scratch: Path) -> tuple[str, dict[str, str]]:
    """An interpreter and environment that start as action.yml's step does: a plain virtual environment holding the
    requirements (no editable install of the action, whose import hook costs about 10 ms a start), `PYTHONPATH` the
    checkout, and the checkout's bytecode written (`PYTHONDONTWRITEBYTECODE` dropped) so no run compiles a module.

    The requirements come from this interpreter's site-packages through a `.pth` line: a folder added that way is not
    itself a site folder, so the editable install's own `.pth` hook there is not run.
    """
    target = scratch / "action-venv"
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(target)
    python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}),
    )
    (site / "requirements-from-dev.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    compileall.compile_dir(ROOT / "sgp_action", quiet=1)
    return str(python), env


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def small_files_tree(root: Path, count: int, size: int = 1024, per_folder: int = 100) -> None:
    """`count` files of `size` bytes of source-like text, `per_folder` to a folder, plus a Dockerfile."""
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . /app\n")
    line = b"    value = compute(items, config)  # "
    for i in range(count):
        folder = root / "src" / f"pkg{i // per_folder:05d}"
        if i % per_folder == 0:
            folder.mkdir()
        text = b"".join(line + b"%d\n" % (i * 31 + j) for j in range(size // len(line) + 1))
        (folder / f"mod{i % per_folder:03d}.py").write_bytes(text[:size])


def spread(values: list[float], unit: str = "s", digits: int = 2) -> str:
    """`median unit (min-max)` of some measurements."""
    return f"{median(values):.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
