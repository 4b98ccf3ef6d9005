"""Peak memory of a full preview `run` uploading a large context, against a naive `requests.post(files=...)`.

* ours:  `python -m sgp_action run` (preview of the sample agent, a `--blob-mb` incompressible file added to the
  context) against an emulator in this process; the child's peak RSS comes from `os.wait4` (ru_maxrss of that one
  child, so the emulator and the benchmark itself are not counted).
* naive: a child that does `requests.post(url, files={"context": open(archive, "rb")})` with the same archive to a
  sink server in this process (requests builds the whole multipart body in memory).

* packaging at scale: the peak RSS of `python -m sgp_action context --output` on trees of `--files` files of 1 KB,
  against the same on 1,000 files (memory flat in the file count: a ratio near 1).

Prints the peaks (MiB) and their ratios. Targets (README.md#performance): a full run under 100 MiB for 400 MB
(issue 7 aims at 60); packaging under 50 MiB at 100,000 and 200,000 files.

    python bench/bench_memory.py [--blob-mb 300] [--files 100000 200000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _harness import ROOT, small_files_tree, start_emulator, workspace

NAIVE = """
import sys, requests
with open(sys.argv[2], "rb") as archive:
    requests.post(sys.argv[1], files={"context": ("context.tar.gz", archive, "application/gzip")}, timeout=600)
"""


class Sink(BaseHTTPRequestHandler):
    """Reads and drops a request body."""

    def do_POST(self) -> None:
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def peak_mib(command: list[str], **kwargs: object) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit status) of one child (ru_maxrss is in KiB on Linux)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, time.perf_counter() - start, child.returncode


def packaging_peaks(scratch: Path, counts: list[int]) -> dict[int, float]:
    """Peak RSS (MiB) of `context --output` on a tree of each count of 1 KB files."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    peaks: dict[int, float] = {}
    for count in counts:
        tree = scratch / f"files-{count}"
        small_files_tree(tree, count)
        command = [
            sys.executable,
            "-m",
            "sgp_action",
            "context",
            "--root",
            str(tree),
            "--output",
            str(scratch / "c.tgz"),
        ]
        peak, _, code = peak_mib(command, env=env, stderr=subprocess.DEVNULL)
        if code != 0:
            raise SystemExit(f"context on {count} files exited {code}")
        peaks[count] = peak
        shutil.rmtree(tree)
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blob-mb", type=int, default=300)
    parser.add_argument("--files", type=int, nargs="*", default=[100_000, 200_000], help="file counts to package")
    args = parser.parse_args()
    server, _ = start_emulator(build_seconds=1.0, deploy_seconds=1.0)
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
            repo, env = workspace(Path(scratch), server.url, poll_interval="0.2s")
            with open(repo / "sample-agent" / "blob.bin", "wb") as blob:
                for _ in range(args.blob_mb):
                    blob.write(os.urandom(1024 * 1024))
            ours, ours_s, code = peak_mib([sys.executable, "-m", "sgp_action", "run"], cwd=repo, env=env)
            if code != 0:
                raise SystemExit(f"run exited {code}")
            archive = Path(scratch) / "context.tar.gz"
            manifest = str(repo / "sample-agent" / "manifest.yaml")
            context = [sys.executable, "-m", "sgp_action", "context", "--manifest", manifest, "--output", str(archive)]
            subprocess.run(context, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            url = f"http://127.0.0.1:{sink.server_address[1]}/upload"
            naive, naive_s, code = peak_mib([sys.executable, "-c", NAIVE, url, str(archive)])
            if code != 0:
                raise SystemExit(f"naive upload exited {code}")
            size = archive.stat().st_size / 1e6
            peaks = packaging_peaks(Path(scratch), [1000, *args.files]) if args.files else {}
    finally:
        sink.shutdown()
        server.close()
    print(f"context archive {size:.0f} MB ({args.blob_mb} MB incompressible blob plus the sample agent)")
    print(f"  {'':<40} {'peak RSS':>11} {'wall':>8}")
    print(f"  {'ours: full run (package+upload+deploy)':<40} {ours:>7.1f} MiB {ours_s:>6.1f} s")
    print(f"  {'naive requests.post(files=...)':<40} {naive:>7.1f} MiB {naive_s:>6.1f} s")
    print(f"\n  ratio ours / naive   {ours / naive:.2f}   (target: ours < 100 MiB, aim 60 MiB)")
    if peaks:
        print("\npackaging (`context --output`) peak RSS by file count (1 KB files), against 1,000 files")
        for count, peak in peaks.items():
            print(f"  {count:>9,} files {peak:>7.1f} MiB   ratio {peak / peaks[1000]:.2f}   (aim < 50 MiB, flat)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
