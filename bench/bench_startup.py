"""Start-up: from process start to the first API request, and the slowest imports.

* warm: the current interpreter and virtualenv, bytecode cached (one untimed run first). A tiny HTTP server in this
  process stamps the first request's arrival; the clock starts just before `Popen` of `python -m sgp_action run` (a
  preview of the sample agent, so packaging the small context comes first) and the child is killed once the
  request arrived (the server answers 503 to stall it).
* baseline: `python -c pass` the same way (process start to exit), so interpreter start-up shows separately.
* `python -X importtime -m sgp_action run --help`: the top cumulative import times.

Cold start (a fresh virtualenv installed from a package index) cannot be measured reliably offline, so it is not
measured; the action's dependencies are few and pinned (see requirements.txt). No assertions; 2 busy cores add noise.

    python bench/bench_startup.py [--runs 5] [--top 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


def first_request(env: dict[str, str], cwd: Path) -> float:
    """Seconds from Popen to the first request reaching the server."""
    ARRIVALS.clear()
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "sgp_action", "run"],
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
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
            repo, env = workspace(Path(scratch), f"http://127.0.0.1:{server.server_address[1]}")
            first_request(env, repo)  # warm the bytecode cache
            ours = [first_request(env, repo) for _ in range(args.runs)]
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
    print("  cold (fresh virtualenv from a package index): not measured offline")
    print(f"\ntop {args.top} imports of `python -X importtime -m sgp_action run --help` (cumulative, top level)")
    for micros, name in import_offenders(args.top):
        print(f"  {micros / 1000:>8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
