"""Cleanup sweep: `command: cleanup` over `--previews` replaceable previews in the emulator, then with 429s.

The emulator runs in this process (see `_harness.py`) and is seeded directly through its store with `--previews`+1
active previews sharing one label (not `pr-<N>`, so no forge lookup): the sweep keeps the newest and deletes the rest
as replaced. The child is `python -m sgp_action run` with `command: cleanup`. Printed per run: wall time (process
start to exit), list-page requests, deletes, any other request, and the 429s answered. The baseline is the least a
sweep can send: the list pages plus one delete per preview. The second run adds the `rate-limit=N` fault (every Nth
request answers 429 with `Retry-After: 1`) on `--rate-limit-previews`. `--linear 20000 50000` adds sweeps of those
sizes and prints each one's time per preview against the `--previews` sweep's (linear time: a ratio near 1). No
assertions; 2 busy cores add noise.

    python bench/bench_cleanup.py [--previews 5000] [--runs 1] [--linear 20000 50000] [--rate-limit 50]
                                  [--rate-limit-previews 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _harness import ACCOUNT, API_KEY, median, spread, start_emulator, workspace

from sgp_action.emulator.deploys import DeployRequest

LABEL = "bench-sweep"
PAGE = 100  # the page size the action lists deployments with


def seed(server: Any, count: int, manifest: str, environments: str) -> None:
    expires = datetime.now(timezone.utc) + timedelta(hours=8)
    request = DeployRequest(
        manifest_file=manifest,
        environment_config=environments,
        agent_name="sample-agent",
        namespace="default",
        build_id=None,
        image_name="sample-agent",
        image_tag="bench",
        preview=True,
        preview_label=LABEL,
        expires_at=expires,
    )
    for _ in range(count):
        server.store.create_deploy(request, ACCOUNT, API_KEY, False)


def sweep(previews: int, faults: list[str]) -> tuple[float, Counter[str], int]:
    server, arrivals = start_emulator(deploy_seconds=0.0, faults=faults)
    statuses: list[int] = []
    original = server.store.record_request

    def count_status(entry: dict[str, object]) -> None:
        statuses.append(int(str(entry.get("status") or 0)))
        original(entry)

    server.store.record_request = count_status
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cleanup-") as scratch:
            repo, env = workspace(Path(scratch), server.url, command="cleanup")
            agent = repo / "sample-agent"
            seed(server, previews + 1, (agent / "manifest.yaml").read_text(), (agent / "environments.yaml").read_text())
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "sgp_action", "run"], cwd=repo, env=env, capture_output=True, text=True
            )
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stdout[-3000:], file=sys.stderr)
                raise SystemExit(f"cleanup exited {done.returncode}")
        kinds: Counter[str] = Counter()
        for _, method, path in arrivals:
            if method == "GET" and path.rstrip("/").endswith("/deployments"):
                kinds["list"] += 1
            elif method == "DELETE":
                kinds["delete"] += 1
            else:
                kinds[f"other {method} {path}"] += 1
        left = sum(1 for d in server.store.snapshot()["deployments"] if d.get("status") not in {"DELETED"})
        kinds["left active"] = left
        return wall, kinds, statuses.count(429)
    finally:
        server.close()


def keepalive_latency(requests_count: int = 200) -> dict[str, list[float]]:
    """Seconds per GET on one kept-alive connection: the emulator as it is, and with Nagle's algorithm back on."""
    import requests

    from sgp_action.emulator import EmulatorConfig, EmulatorServer

    class NagleServer(EmulatorServer):
        def get_request(self) -> tuple[Any, Any]:
            return super(EmulatorServer, self).get_request()

    nagle = NagleServer(EmulatorConfig(api_key=API_KEY, account_id=ACCOUNT)).start()
    servers = {"TCP_NODELAY": start_emulator()[0], "Nagle on (before)": nagle}
    times: dict[str, list[float]] = {name: [] for name in servers}
    sessions = {name: requests.Session() for name in servers}
    headers = {"x-api-key": API_KEY, "x-selected-account-id": ACCOUNT}
    try:
        for i in range(requests_count + 1):
            for name, server in servers.items():  # interleaved
                start = time.perf_counter()
                sessions[name].get(f"{server.url}/v5/agentex/deployments", headers=headers, timeout=10)
                if i:  # the first request opens the connection
                    times[name].append(time.perf_counter() - start)
    finally:
        for server in servers.values():
            server.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previews", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=1, help="sweeps per size, interleaved across sizes")
    parser.add_argument("--linear", type=int, nargs="*", default=[], help="larger sizes for the per-preview check")
    parser.add_argument("--rate-limit", type=int, default=50)
    parser.add_argument("--rate-limit-previews", type=int, default=1000, help="0 skips the throttled run")
    args = parser.parse_args()
    latency = keepalive_latency()
    print("emulator, one GET on a kept-alive connection (200 interleaved), median (min-max):")
    for name, values in latency.items():
        print(f"  {name:<20} {spread([v * 1e3 for v in values], 'ms')}")
    ratio = median(latency["TCP_NODELAY"]) / median(latency["Nagle on (before)"])
    print(f"  ratio {ratio:.3f}  (aim: about 1 ms)\n")
    sizes = [args.previews, *args.linear]
    walls: dict[int, list[float]] = {n: [] for n in sizes}
    counts: dict[int, tuple[Counter[str], int]] = {}
    for _ in range(args.runs):
        for n in sizes:  # interleaved, so load from others hits every size alike
            wall, kinds, throttled = sweep(n, [])
            walls[n].append(wall)
            counts[n] = (kinds, throttled)
    runs = {f"{n} previews": (n, median(walls[n]), *counts[n]) for n in sizes}
    if args.rate_limit_previews:
        n = args.rate_limit_previews
        runs[f"{n}, rate-limit={args.rate_limit}"] = (n, *sweep(n, [f"rate-limit={args.rate_limit}"]))
    print(f"N+1 previews with one label: N to delete, the newest kept; {args.runs} run(s) per size, medians")
    print(f"  {'run':<24} {'wall':>8} {'lists':>6} {'least':>6} {'deletes':>8} {'other':>6} {'429s':>5} {'left':>5}")
    for name, (n, wall, kinds, throttled) in runs.items():
        other = sum(count for k, count in kinds.items() if k.startswith("other"))
        least = -(-(n + 1) // PAGE)
        print(
            f"  {name:<24} {wall:>6.1f} s {kinds['list']:>6} {least:>6} {kinds['delete']:>8} {other:>6} {throttled:>5}"
            f" {kinds['left active']:>5}"
        )
        for key, count in kinds.items():
            if key.startswith("other"):
                print(f"    {count} x {key[len('other ') :]}")
    print("  least: the fewest list pages; deletes should equal N (429 retries count again), 'other' 0, 'left' 1")
    base = args.previews
    print(f"\n  sweep of {base}: {spread(walls[base])}  (aim < 20 s)")
    for n in args.linear:  # linear time: the cost per preview does not grow with the count
        ratio = (median(walls[n]) / n) / (median(walls[base]) / base)
        print(
            f"  per preview at {n} / at {base}: {median(walls[n]) / n * 1e3:.2f} ms / "
            f"{median(walls[base]) / base * 1e3:.2f} ms = {ratio:.2f}  (linear: about 1)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
