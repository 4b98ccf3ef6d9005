"""Cleanup sweep: `command: cleanup` over `--previews` replaceable previews in the emulator, then with 429s.

The emulator runs in this process (see `_harness.py`) and is seeded directly through its store with `--previews`+1
active previews sharing one label (not `pr-<N>`, so no forge lookup): the sweep keeps the newest and deletes the rest
as replaced. The child is `python -m sgp_action run` with `command: cleanup`. Printed per run: wall time (process
start to exit), list-page requests, deletes, any other request, and the 429s answered. The baseline is the least a
sweep can send: the list pages plus one delete per preview. The second run adds the `rate-limit=N` fault (every Nth
request answers 429 with `Retry-After: 1`). No assertions; 2 busy cores add noise.

    python bench/bench_cleanup.py [--previews 2000] [--rate-limit 50]
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

from _harness import ACCOUNT, API_KEY, start_emulator, workspace

from sgp_action.emulator.deploys import DeployRequest

LABEL = "bench-sweep"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previews", type=int, default=2000)
    parser.add_argument("--rate-limit", type=int, default=50)
    args = parser.parse_args()
    runs = {
        "no faults": sweep(args.previews, []),
        f"rate-limit={args.rate_limit}": sweep(args.previews, [f"rate-limit={args.rate_limit}"]),
    }
    print(f"{args.previews + 1} previews with one label: {args.previews} to delete, the newest kept")
    print(f"  {'run':<16} {'wall':>8} {'lists':>6} {'deletes':>8} {'other':>6} {'429s':>5} {'left':>5}")
    for name, (wall, kinds, throttled) in runs.items():
        other = sum(n for k, n in kinds.items() if k.startswith("other"))
        print(
            f"  {name:<16} {wall:>6.1f} s {kinds['list']:>6} {kinds['delete']:>8} {other:>6} {throttled:>5}"
            f" {kinds['left active']:>5}"
        )
        for key, n in kinds.items():
            if key.startswith("other"):
                print(f"    {n} x {key[len('other ') :]}")
    print("  baseline: the list pages plus one delete per preview; 'other' should be 0 (429 retries count again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
