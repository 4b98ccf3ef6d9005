"""Latency of a full preview `run` against the emulator: log lines, build -> deploy, healthy -> exit.

The emulator runs in this process (see `_harness.py`); the child `python -m sgp_action run` writes to a pipe that a
thread reads, stamping each line with `time.monotonic()` on arrival. Three figures, with what they really measure:

* log line: the emulator's schedule for each build log line (build created + the line's offset; the SSE handler
  wakes on that schedule) to the line arriving on the child's stdout pipe, median and 95th percentile. The Dockerfile
  has `--steps` `RUN echo` lines so there are enough samples.
* build -> deploy: the build's scheduled success moment to the arrival of the deployment create request.
* healthy -> exit: the deployment's scheduled HEALTHY moment to the child's exit (waitpid returning).

Run with the action's default poll interval (5 s, unless --poll-interval). No assertions; 2 busy cores add noise.

    python bench/bench_latency.py [--runs 3] [--steps 60] [--build-seconds 6] [--poll-interval 5s]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness import percentile, start_emulator, workspace


def one_run(steps: int, build_seconds: float, poll_interval: str) -> tuple[list[float], float, float]:
    server, arrivals = start_emulator(build_seconds=build_seconds, deploy_seconds=2.0)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
            repo, env = workspace(Path(scratch), server.url, poll_interval=poll_interval)
            dockerfile = repo / "sample-agent" / "Dockerfile"
            marks = "".join(f'RUN echo "bench-mark-{i:04d}"\n' for i in range(steps))
            dockerfile.write_text(dockerfile.read_text() + marks)
            child = subprocess.Popen(
                [sys.executable, "-m", "sgp_action", "run"],
                cwd=repo,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            seen: list[tuple[float, str]] = []

            def pump() -> None:
                assert child.stdout is not None
                for raw in child.stdout:
                    seen.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            child.wait()
            exited = time.monotonic()
            reader.join(5)
            if child.returncode != 0:
                print("\n".join(text for _, text in seen[-20:]), file=sys.stderr)
                raise SystemExit(f"run exited {child.returncode}")
        build = next(iter(server.store.builds.values()))
        deploy = next(iter(server.store.deploys.values()))
        lags = []
        for at, text in build.lines or []:
            if "bench-mark-" not in text:
                continue
            arrival = next((t for t, line in seen if line.endswith(text)), None)
            if arrival is not None:
                lags.append(arrival - (build.created_mono + at))
        success = build.created_mono + build.finish_seconds
        create = next(t for t, method, path in arrivals if method == "POST" and "deploy" in path)
        healthy_at = min(s.at for s in deploy.timeline if s.status == "HEALTHY")
        healthy = deploy.created_mono + healthy_at * deploy.duration
        return lags, create - success, exited - healthy
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--build-seconds", type=float, default=6.0)
    parser.add_argument("--poll-interval", default="5s")
    args = parser.parse_args()
    lags: list[float] = []
    to_deploy: list[float] = []
    to_exit: list[float] = []
    for _ in range(args.runs):
        run_lags, deploy_gap, exit_gap = one_run(args.steps, args.build_seconds, args.poll_interval)
        lags += run_lags
        to_deploy.append(deploy_gap)
        to_exit.append(exit_gap)
    print(f"{args.runs} runs, poll interval {args.poll_interval}, {len(lags)} log lines matched")
    print(f"  {'figure':<34} {'median':>10} {'p95 / max':>10}   target")
    rows = [
        ("log line: server -> stdout", lags, percentile(lags, 0.95), "<= 50 ms median"),
        ("build success -> deploy create", to_deploy, max(to_deploy), "<= 1000 ms"),
        ("deployment healthy -> exit", to_exit, max(to_exit), "<= 1000 ms"),
    ]
    for label, values, high, target in rows:
        print(f"  {label:<34} {statistics.median(values) * 1000:>7.1f} ms {high * 1000:>7.1f} ms   {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
