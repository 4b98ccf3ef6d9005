"""Packaging speed and size: `sgp-action context --output` against GNU `tar -czf` (gzip level 6), side by side.

Builds a synthetic tree in a temporary folder (thousands of small source files plus incompressible blobs) and a
variant holding a large `node_modules` that `.dockerignore` excludes, then times, interleaved and best of N:

* ours:  `python -m sgp_action context --root TREE --output OUT` (a real process, start-up included);
* tar:   `tar -czf OUT -C TREE .` (gzip's default level is 6);
* ours on the variant with the excluded `node_modules`;
* with `--agentex PATH` (the `agentex` command of agentex-sdk, which needs Python 3.12 or newer, installed in a
  separate virtualenv): `agentex agents package --manifest M -o OUT` against our `context --manifest M --output OUT`
  on the same tree with a manifest.yaml (root `.`, include paths `src` and `assets`). The agentex CLI writes with
  Python's `tarfile` in `w:gz` mode, i.e. one thread at zlib level 9
  (docs/build-context.md#the-agentex-clis-exclusions).

Prints the time ratio (aim <= 0.7), the size ratio (aim <= 1.05) and the pruning ratio (aim <= 1.3). No
assertions: timings depend on the machine and on whatever else runs on it.

    python bench/bench_packaging.py [--runs 3] [--source-files 4000] [--blob-mb 60] [--node-modules 60000]
                                    [--agentex /path/to/venv/bin/agentex]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "def",
    "class",
    "return",
    "import",
    "from",
    "self",
    "value",
    "result",
    "items",
    "config",
    "request",
    "response",
    "logger",
    "async",
    "await",
    "for",
    "in",
    "if",
    "else",
    "elif",
    "None",
    "True",
    "False",
    "raise",
    "except",
    "try",
    "with",
    "as",
    "yield",
    "lambda",
    "data",
    "path",
    "name",
    "index",
    "count",
    "total",
    "buffer",
]


def source_text(rng: random.Random, size: int) -> bytes:
    """Python-looking text: compresses about as well as real source."""
    lines = []
    total = 0
    while total < size:
        indent = "    " * rng.randint(0, 3)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        line = f"{indent}{words}  # {rng.randint(0, 10**6)}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def build_tree(root: Path, *, source_files: int, blob_mb: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . /app\n")
    for i in range(source_files):
        folder = root / "src" / f"pkg{i % 40:02d}" / f"mod{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i:05d}.py").write_bytes(source_text(rng, rng.randint(2_000, 30_000)))
    blobs = root / "assets"
    blobs.mkdir()
    for i in range(max(1, blob_mb // 10)):
        (blobs / f"blob{i}.bin").write_bytes(rng.randbytes(min(10, blob_mb) * 1024 * 1024))


def add_node_modules(root: Path, count: int) -> None:
    (root / ".dockerignore").write_text("node_modules\n**/*.tmp\n")
    per_folder = 100
    for i in range(0, count, per_folder):
        folder = root / "node_modules" / f"package-{i // per_folder:04d}" / "lib"
        folder.mkdir(parents=True)
        for j in range(min(per_folder, count - i)):
            (folder / f"index{j}.js").write_text(f"module.exports = {i + j};\n")


MANIFEST = """build:
  context:
    root: .
    include_paths: [src, assets]
    dockerfile: Dockerfile
agent:
  name: bench-agent
  acp_type: sync
  description: packaging benchmark
deployment:
  image:
    repository: bench-agent
    tag: latest
"""


def tree_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(folder, name)).st_size
    return files, size


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source-files", type=int, default=4000)
    parser.add_argument("--blob-mb", type=int, default=60)
    parser.add_argument("--node-modules", type=int, default=60_000)
    parser.add_argument("--agentex", help="an `agentex` executable (agentex-sdk) to compare with")
    args = parser.parse_args()
    tar = shutil.which("tar")
    if tar is None:
        print("GNU tar is needed", file=sys.stderr)
        return 1
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-packaging-") as scratch:
        base, variant, out = Path(scratch) / "base", Path(scratch) / "variant", Path(scratch) / "out"
        out.mkdir()
        started = time.perf_counter()
        build_tree(base, source_files=args.source_files, blob_mb=args.blob_mb)
        build_tree(variant, source_files=args.source_files, blob_mb=args.blob_mb)
        add_node_modules(variant, args.node_modules)
        files, size = tree_size(base)
        (base / "manifest.yaml").write_text(MANIFEST, encoding="utf-8")  # after counting: not part of the tree
        print(f"tree: {files} files, {size / 1e6:.1f} MB; variant adds {args.node_modules} excluded node_modules files")
        print(f"(built in {time.perf_counter() - started:.1f} s; CPUs available: {len(os.sched_getaffinity(0))})")

        ours_cmd = [sys.executable, "-m", "sgp_action", "context", "--output"]
        commands = {
            "ours": [*ours_cmd, str(out / "ours.tgz"), "--root", str(base)],
            "tar": [tar, "-czf", str(out / "tar.tgz"), "-C", str(base), "."],
            "ours+node_modules": [*ours_cmd, str(out / "ours-nm.tgz"), "--root", str(variant)],
        }
        if args.agentex:
            manifest = str(base / "manifest.yaml")
            commands["ours-manifest"] = [*ours_cmd, str(out / "ours-m.tgz"), "--manifest", manifest]
            commands["agentex"] = [args.agentex, "agents", "package", "--manifest", manifest, "-o", str(out / "ax.tgz")]
        for command in commands.values():  # warm the page cache and the interpreter's bytecode cache
            timed(command, env)
        best = {name: float("inf") for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():  # interleaved, so load from others hits every side alike
                best[name] = min(best[name], timed(command, env))
        ours_size = (out / "ours.tgz").stat().st_size
        tar_size = (out / "tar.tgz").stat().st_size
        agentex_sizes = (
            ((out / "ours-m.tgz").stat().st_size, (out / "ax.tgz").stat().st_size) if args.agentex else (0, 0)
        )

    rows = [
        ("ours: context --output", f"{best['ours']:.2f} s", f"{ours_size / 1e6:.2f} MB"),
        ("GNU tar -czf (gzip -6)", f"{best['tar']:.2f} s", f"{tar_size / 1e6:.2f} MB"),
        ("ours, excluded node_modules", f"{best['ours+node_modules']:.2f} s", ""),
    ]
    if args.agentex:
        rows.append(("ours: context --manifest", f"{best['ours-manifest']:.2f} s", f"{agentex_sizes[0] / 1e6:.2f} MB"))
        rows.append(("agentex agents package", f"{best['agentex']:.2f} s", f"{agentex_sizes[1] / 1e6:.2f} MB"))
    print(f"\nbest of {args.runs} runs")
    for label, seconds, megabytes in rows:
        print(f"  {label:<30} {seconds:>9} {megabytes:>10}")
    print()
    print(f"  time ratio    ours / tar -czf        {best['ours'] / best['tar']:.2f}   (aim <= 0.7)")
    print(f"  size ratio    ours / gzip -6         {ours_size / tar_size:.3f}  (aim <= 1.05)")
    print(f"  pruning ratio with / without nm      {best['ours+node_modules'] / best['ours']:.2f}   (aim <= 1.3)")
    if args.agentex:
        print(f"  time ratio    ours / agentex CLI     {best['ours-manifest'] / best['agentex']:.2f}")
        print(f"  size ratio    ours / agentex CLI     {agentex_sizes[0] / agentex_sizes[1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
