"""`.dockerignore` matching: hostile patterns and 100,000 literal lines next to a plain file, in the same runs.

Each case reads its `.dockerignore` text into a fresh `DockerIgnore` (no cache carried over) and asks it about the
same paths: 50 names of 41 characters, one name of 200 characters, one path 101 segments deep and 1,000 paths of the
literal case (`dir<i>/file<i>.txt`). Cases run interleaved, round after round; each round's time is divided by the
plain file's time in that round, and the medians, minima and maxima over the rounds are printed.

* plain: `*.pyc`, `**/__pycache__`, `node_modules`, `.git`, `!keep.pyc`: what a project usually has.
* 8 stars: `*a*a*a*a*a*a*a*b`-style backtracking bait against the 200-character name.
* 20 x `**/`: a chain of segment wildcards against the deep path.
* 6 stars x 4 lines: `*?*?*?*?*?*?b` (and `c`, `d`, `e`) against the 41-character names.
* 100,000 literal lines (reading them included), with the peak of Python allocations measured in a last run.

A second part times the plain file on 20,000 typical paths (per path), optionally also with the matcher of an older
commit (`--against REV`, read from git into a temporary module) to show what the linear-time matcher costs there.
The older matcher is never run on the hostile cases: it takes minutes on each.

No assertions; 2 busy cores add noise.

    python bench/bench_ignore.py [--runs 15] [--against REV]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sgp_action.packaging.dockerignore import DockerIgnore  # noqa: E402

PLAIN = "*.pyc\n**/__pycache__\nnode_modules\n.git\n!keep.pyc"
LITERALS = "\n".join(f"dir{i}/file{i}.txt" for i in range(100_000))
CASES = {
    "plain (baseline)": PLAIN,
    "8 stars, 200-char name": "*a*a*a*a*a*a*a*a*b",
    "20 x **/, 101 segments": "**/" * 20 + "b",
    "6 stars x 4 lines, 41-char names": "\n".join("*?*?*?*?*?*?" + last for last in "bcde"),
    "100,000 literal lines": LITERALS,
}
PATHS = (
    [f"{i:02d}" + "a" * 39 for i in range(50)]
    + ["a" * 200, "a/" * 100 + "c"]
    + [f"dir{i}/file{i}.txt" for i in range(0, 100_000, 100)]
)
TYPICAL = [f"src/pkg{i % 40}/sub{i % 7}/module_{i}.py" for i in range(20_000)]


def timed(matcher: type[Any], text: str, paths: list[str]) -> float:
    """Seconds to read `text` into a fresh matcher and ask it about every path."""
    started = time.perf_counter()
    ignore = matcher.parse(text)
    for path in paths:
        ignore.excluded(path)
    return time.perf_counter() - started


def older_matcher(rev: str) -> type[Any]:
    """`DockerIgnore` as it was at git revision `rev`, loaded from a temporary copy of its module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:sgp_action/packaging/dockerignore.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-ignore-"))
    (folder / "older_dockerignore.py").write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("older_dockerignore", folder / "older_dockerignore.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks its module up there
    spec.loader.exec_module(module)
    return module.DockerIgnore  # type: ignore[no-any-return]


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """`median (min-max)` of values times scale."""
    low, mid, high = min(values) * scale, statistics.median(values) * scale, max(values) * scale
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def rounds(cases: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """Each case once per round, in order, for `runs` rounds (one untimed round first)."""
    for run in cases.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, run in cases.items():
            times[name].append(run())
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--against", metavar="REV", help="also time the plain file with the matcher at this commit")
    args = parser.parse_args()

    times = rounds({name: partial(timed, DockerIgnore, text, PATHS) for name, text in CASES.items()}, args.runs)
    base = times["plain (baseline)"]
    print(f"{len(PATHS)} paths per case, {args.runs} interleaved rounds: median (min-max)\n")
    print(f"  {'case':<34} {'ms':>22} {'ratio to plain':>22}")
    for name, values in times.items():
        ratios = [value / plain for value, plain in zip(values, base, strict=True)]
        print(f"  {name:<34} {spread(values, 1000):>22} {spread(ratios, 1, 1):>22}")

    tracemalloc.start()
    timed(DockerIgnore, LITERALS, PATHS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\n  100,000 literal lines: peak Python allocations {peak / 1e6:.1f} MB")

    typical: dict[str, Callable[[], float]] = {"plain, this matcher": partial(timed, DockerIgnore, PLAIN, TYPICAL)}
    if args.against:
        typical[f"plain, matcher at {args.against}"] = partial(timed, older_matcher(args.against), PLAIN, TYPICAL)
    times = rounds(typical, args.runs)
    print(f"\n{len(TYPICAL)} typical paths, plain file: microseconds per path, median (min-max)\n")
    for name, values in times.items():
        print(f"  {name:<34} {spread(values, 1e6 / len(TYPICAL)):>22}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
