"""Start-up: from process start to the first API request, and the slowest imports.

* warm: the current interpreter and virtualenv, bytecode cached (one untimed run first). A tiny HTTP server in this
  process stamps the first request's arrival; the clock starts just before `Popen` of `python -m sgp_action run` (a
  preview of the sample agent, so packaging the small context comes first) and the child is killed once the
  request arrived (the server answers 503 to stall it).
* baseline: `python -c pass` the same way (process start to exit), so interpreter start-up shows separately.
* `python -X importtime -m sgp_action run --help`: the top cumulative import times.

* through action.yml, as a runner does it: the "Python environment" step's own script (read from action.yml) then
  `entrypoint.py run` with the interpreter that step chose, timed from the step's start to the first request.
  cold: an empty tool cache and pip's cache off, so the pinned requirements are downloaded and installed (from the
  package index pip is configured with; pass --pip-args to use a mirror or a wheel folder); cached: the same tool
  cache again, so the step only finds the ready environment.

No assertions; 2 busy cores add noise.

    python bench/bench_startup.py [--runs 5] [--cold-runs 2] [--top 10] [--pip-args "..."]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from _harness import ROOT, workspace

ARRIVALS: list[float] = []


class Stall(BaseHTTPRequestHandler):
    """Stamps each request and answers 503, so the child keeps retrying until it is killed."""

    def _any(self) -> None:
        ARRIVALS.append(time.monotonic())
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, format: str, *args: object) -> None:
        return


def first_request(
    env: dict[str, str], cwd: Path, command: list[str] | None = None, start: float | None = None
) -> float:
    """Seconds from Popen (or from `start`) to the first request reaching the server."""
    ARRIVALS.clear()
    start = time.monotonic() if start is None else start
    child = subprocess.Popen(
        command or [sys.executable, "-m", "sgp_action", "run"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not ARRIVALS:
            if child.poll() is not None:
                raise SystemExit(f"run exited {child.returncode} before any request")
            time.sleep(0.002)
        return ARRIVALS[0] - start
    finally:
        child.kill()
        child.wait()


def environment_step_script() -> str:
    """The `run:` script of action.yml's "Python environment" step, exactly as the runner would execute it."""
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    (step,) = [step for step in action["runs"]["steps"] if step.get("id") == "python"]
    return str(step["run"])


def through_action(env: dict[str, str], cwd: Path, tool_cache: Path, pip_args: str, cold: bool) -> float:
    """Seconds from the environment step's start to the first request of `entrypoint.py run` it leads to."""
    outputs = tool_cache.parent / "step_output"
    outputs.write_text("", encoding="utf-8")
    step_env = dict(
        env, GITHUB_ACTION_PATH=str(ROOT), SGP_ACTION_TOOL_CACHE=str(tool_cache), GITHUB_OUTPUT=str(outputs)
    )
    step_env["SGP_ACTION_PIP_ARGS"] = pip_args
    step_env.pop("PYTHONPATH", None)  # the runner sets none: entrypoint.py finds the package itself
    if cold:
        step_env["PIP_NO_CACHE_DIR"] = "1"
    start = time.monotonic()
    subprocess.run(["bash", "-c", environment_step_script()], env=step_env, check=True, stdout=subprocess.DEVNULL)
    python = outputs.read_text(encoding="utf-8").strip().removeprefix("python=")
    return first_request(step_env, cwd, [python, str(ROOT / "entrypoint.py"), "run"], start)


def bare_python() -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - start


def import_offenders(top: int) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sgp_action", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name[1:].startswith(" "):  # only top-level imports (nested ones are inside their parent's figure)
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=2)
    parser.add_argument(
        "--pip-args", default="", help="extra pip arguments for the cold runs (a mirror, a wheel folder)"
    )
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    cold: list[float] = []
    cached: list[float] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
            repo, env = workspace(Path(scratch), f"http://127.0.0.1:{server.server_address[1]}")
            first_request(env, repo)  # warm the bytecode cache
            ours = [first_request(env, repo) for _ in range(args.runs)]
            for _ in range(args.cold_runs):
                tool_cache = Path(scratch) / "tool_cache"
                shutil.rmtree(tool_cache, ignore_errors=True)
                tool_cache.mkdir()
                cold.append(through_action(env, repo, tool_cache, args.pip_args, cold=True))
                cached.append(through_action(env, repo, tool_cache, args.pip_args, cold=False))
    finally:
        server.shutdown()
    bare = [bare_python() for _ in range(args.runs)]
    print(f"{args.runs} runs each, CPUs available: {len(os.sched_getaffinity(0))}")
    print(f"  {'':<44} {'median':>8} {'min':>8}")
    print(f"  {'ours: process start -> first API request':<44} {statistics.median(ours):>6.3f} s {min(ours):>6.3f} s")
    print(f"  {'baseline: python -c pass (start -> exit)':<44} {statistics.median(bare):>6.3f} s {min(bare):>6.3f} s")
    print(
        f"  ratio ours / bare python {statistics.median(ours) / statistics.median(bare):.1f}   (target: warm <= 1.5 s)"
    )
    if cold:
        label_cold, label_cached = "action.yml, cold: new venv + pip install", "action.yml, cached venv found"
        print(f"  {label_cold:<44} {statistics.median(cold):>6.3f} s {min(cold):>6.3f} s   (target: cold <= 30 s)")
        print(f"  {label_cached:<44} {statistics.median(cached):>6.3f} s {min(cached):>6.3f} s   (target: <= 1.5 s)")
    print(f"\ntop {args.top} imports of `python -X importtime -m sgp_action run --help` (cumulative, top level)")
    for micros, name in import_offenders(args.top):
        print(f"  {micros / 1000:>8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
