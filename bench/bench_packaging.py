"""Packaging speed and size: `sgp-action context --output` against GNU `tar -czf` (gzip level 6), side by side.

Builds synthetic trees in a temporary folder (the mixed tree: thousands of source files plus incompressible blobs;
a variant holding a large `node_modules` that `.dockerignore` excludes; trees of `--small` 1 KB files), then times
them interleaved, `--runs` rounds after one warm-up, and prints medians with min and max:

* ours:  `python -m sgp_action context --root TREE --output OUT` (a real process, start-up included);
* tar:   `tar -czf OUT -C TREE .` (gzip's default level is 6; `GZIP` is emptied), on every tree;
* with `pigz` on PATH: `tar -cf - -C TREE . | pigz -6` on the mixed tree (gzip on every core, as ours);
* ours on the variant with the excluded `node_modules`, against ours without it;
* with `--agentex PATH` (the `agentex` command of agentex-sdk, which needs Python 3.12 or newer, installed in a
  separate virtualenv): `agentex agents package --manifest M -o OUT` against our `context --manifest M --output OUT`
  on the same tree with a manifest.yaml (root `.`, include paths `src` and `assets`), and on an agent laid out as
  agentex does (`project/` with 2,000 source files and a 20,000-file `.venv` its dockerignore leaves out). The
  agentex CLI writes with Python's `tarfile` in `w:gz` mode, i.e. one thread at zlib level 9
  (docs/build-context.md#the-agentex-clis-exclusions).

Our commands run as action.yml runs them (`_harness.action_python`: a plain virtual environment with the
requirements, `PYTHONPATH` the checkout, bytecode written), not through the dev environment's editable install.
On the smallest tree it also times, against tar: `python -c ''` (the interpreter's start-up, the floor of any
command of ours), the imports of the `context` path, and `build_context` alone inside a started process (what the
per-file work costs without start-up).

Prints each row's ratio of medians against its baseline (aims: mixed tree 0.6, 1,000 small files 2, 100,000 small
files 1.3, pruning 1.3, the agent against the agentex CLI 0.07), and the size against `gzip -6` (aim 1.05).
No assertions: timings depend on the machine and on whatever else runs on it.

    python bench/bench_packaging.py [--runs 3] [--source-files 4000] [--blob-mb 40] [--node-modules 60000]
                                    [--small 1000 10000 100000] [--agentex /path/to/venv/bin/agentex]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import action_python, median, small_files_tree, spread

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


def agent_tree(root: Path, *, kept: int = 2000, venv: int = 20_000, seed: int = 11) -> str:
    """An agent as agentex lays it out: `project/` with `kept` source files and a `venv`-file `.venv` that the
    dockerignore leaves out (both tools honour it). Returns the manifest's path."""
    rng = random.Random(seed)
    project = root / "project"
    for i in range(kept):
        folder = project / f"pkg{i % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{i:04d}.py").write_bytes(source_text(rng, rng.randint(500, 6000)))
    for i in range(0, venv, 100):
        folder = project / ".venv" / "lib" / f"dist{i // 100:03d}"
        folder.mkdir(parents=True)
        for j in range(min(100, venv - i)):
            (folder / f"m{j}.py").write_text(f"x = {i + j}\n")
    (root / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY project /app\n")
    (root / ".dockerignore").write_text(".venv\n**/.venv\n__pycache__\n")
    manifest = MANIFEST.replace("[src, assets]", "[project]").replace(
        "dockerfile: Dockerfile", "dockerfile: Dockerfile\n    dockerignore: .dockerignore"
    )
    (root / "manifest.yaml").write_text(manifest, encoding="utf-8")
    return str(root / "manifest.yaml")


def tree_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(folder, name)).st_size
    return files, size


# Run by the action's interpreter: one build_context of argv[1] into argv[2], timed inside the process.
IN_PROCESS = """import sys, time
from pathlib import Path
from sgp_action.packaging.archive import BuildContextSpec, build_context
root = Path(sys.argv[1])
spec = BuildContextSpec.plain(root, dockerfile="Dockerfile", workspace=root)
start = time.perf_counter()
build_context(spec, Path(sys.argv[2]), keep_names=False)
print(time.perf_counter() - start)
"""


def timed(command: list[str], env: dict[str, str] | None = None, *, reported: bool = False) -> float:
    """The wall time of a process; with `reported`, the seconds it printed itself."""
    start = time.perf_counter()
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    elapsed = time.perf_counter() - start
    return float(done.stdout) if reported else elapsed


def measure(
    commands: dict[str, list[str]], runs: int, env: dict[str, str], reported: frozenset[str] = frozenset()
) -> dict[str, list[float]]:
    """Each command once to warm caches, then `runs` rounds, interleaved so load from others hits every side alike."""
    for name, command in commands.items():
        timed(command, env, reported=name in reported)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(timed(command, env, reported=name in reported))
    return times


def row(label: str, ours: list[float], baseline_label: str, baseline: list[float], aim: str) -> str:
    """One line: ours and the baseline (median, min-max) and the ratio of the medians; in ms when both are short."""
    if max(median(ours), median(baseline)) < 1:
        shown = (spread([t * 1000 for t in ours], "ms", 1), spread([t * 1000 for t in baseline], "ms", 1))
    else:
        shown = (spread(ours), spread(baseline))
    return (
        f"  {label:<34} {shown[0]:>22}   {baseline_label:<24} {shown[1]:>22}   "
        f"{median(ours) / median(baseline):>5.2f}  {aim}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source-files", type=int, default=4000)
    parser.add_argument("--blob-mb", type=int, default=40)
    parser.add_argument("--node-modules", type=int, default=60_000)
    parser.add_argument("--small", type=int, nargs="*", default=[1000, 10_000, 100_000], help="1 KB file counts")
    parser.add_argument("--agentex", help="an `agentex` executable (agentex-sdk) to compare with")
    args = parser.parse_args()
    tar = shutil.which("tar")
    if tar is None:
        print("GNU tar is needed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-packaging-") as scratch:
        python, env = action_python(Path(scratch))
        env["GZIP"] = ""
        ours_cmd = [python, "-m", "sgp_action", "context", "--output"]
        base, variant, out = Path(scratch) / "base", Path(scratch) / "variant", Path(scratch) / "out"
        out.mkdir()
        started = time.perf_counter()
        build_tree(base, source_files=args.source_files, blob_mb=args.blob_mb)
        build_tree(variant, source_files=args.source_files, blob_mb=args.blob_mb)
        add_node_modules(variant, args.node_modules)
        files, size = tree_size(base)
        (base / "manifest.yaml").write_text(MANIFEST, encoding="utf-8")  # after counting: not part of the tree
        for count in args.small:
            small_files_tree(Path(scratch) / f"small-{count}", count)
        print(f"mixed tree: {files} files, {size / 1e6:.1f} MB; variant adds {args.node_modules} excluded files")
        print(f"(built in {time.perf_counter() - started:.1f} s; CPUs available: {len(os.sched_getaffinity(0))})")

        commands = {
            "ours": [*ours_cmd, str(out / "ours.tgz"), "--root", str(base)],
            "tar": [tar, "-czf", str(out / "tar.tgz"), "-C", str(base), "."],
            "ours+node_modules": [*ours_cmd, str(out / "ours-nm.tgz"), "--root", str(variant)],
        }
        pigz = shutil.which("pigz")
        if pigz:  # parallel gzip at the same level on every core, as we compress: the fairer baseline for speed
            pipeline = f"{tar} -cf - -C {shlex.quote(str(base))} . | {pigz} -6 > {shlex.quote(str(out / 'pigz.tgz'))}"
            commands["tar | pigz -6"] = ["sh", "-c", pipeline]
        if args.agentex:
            manifest = str(base / "manifest.yaml")
            commands["ours-manifest"] = [*ours_cmd, str(out / "ours-m.tgz"), "--manifest", manifest]
            commands["agentex"] = [args.agentex, "agents", "package", "--manifest", manifest, "-o", str(out / "ax.tgz")]
            agent = agent_tree(Path(scratch) / "agent")
            commands["ours-agent"] = [*ours_cmd, str(out / "ours-a.tgz"), "--manifest", agent]
            commands["agentex-agent"] = [
                args.agentex,
                "agents",
                "package",
                "--manifest",
                agent,
                "-o",
                str(out / "axa.tgz"),
            ]
        # The floor of any `python -m ...` command: the interpreter starting and exiting, nothing imported.
        commands["python -c ''"] = [python, "-c", ""]
        context_modules = "sgp_action.cli, sgp_action.commands.context, sgp_action.packaging.archive"
        commands["imports"] = [python, "-c", f"import {context_modules}"]
        if args.small:
            smallest_tree = str(Path(scratch) / f"small-{min(args.small)}")
            commands["in-process"] = [python, "-c", IN_PROCESS, smallest_tree, str(out / "in-process.tgz")]
        for count in args.small:
            tree = str(Path(scratch) / f"small-{count}")
            commands[f"ours-{count}"] = [*ours_cmd, str(out / f"ours-{count}.tgz"), "--root", tree]
            commands[f"tar-{count}"] = [tar, "-czf", str(out / f"tar-{count}.tgz"), "-C", tree, "."]
        times = measure(commands, args.runs, env, frozenset({"in-process"}))
        ours_size = (out / "ours.tgz").stat().st_size
        tar_size = (out / "tar.tgz").stat().st_size
        agentex_sizes = (
            ((out / "ours-m.tgz").stat().st_size, (out / "ax.tgz").stat().st_size) if args.agentex else (0, 0)
        )

    print(f"\nmedian (min-max) of {args.runs} interleaved runs, each a process (start-up included); ratio of medians")
    print(f"  {'ours':<34} {'':>22}   {'baseline':<24} {'':>22}   ratio")
    mixed = f"{files:,} files / {size / 1e6:.0f} MB mixed tree"
    print(row(mixed, times["ours"], "GNU tar -czf", times["tar"], "(aim <= 0.6)"))
    if "tar | pigz -6" in times:
        print(row("  same tree", times["ours"], "tar | pigz -6", times["tar | pigz -6"], ""))
    for count in args.small:
        aim = "(aim <= 2)" if count <= 1000 else "(aim <= 1.3)" if count >= 100_000 else ""
        print(row(f"{count:,} files of 1 KB", times[f"ours-{count}"], "GNU tar -czf", times[f"tar-{count}"], aim))
    if args.small:
        smallest = min(args.small)
        floor = times["python -c ''"]
        tar_smallest, against = times[f"tar-{smallest}"], f"tar -czf, {smallest:,} files"
        print(row("floor: python -c '' (start-up)", floor, against, tar_smallest, ""))
        print(row("  + imports of the context path", times["imports"], against, tar_smallest, ""))
        print(row(f"  build_context alone, {smallest:,} files", times["in-process"], against, tar_smallest, ""))
    print(row("mixed + excluded node_modules", times["ours+node_modules"], "without it", times["ours"], "(aim <= 1.3)"))
    if args.agentex:
        print(
            row(
                "context --manifest, mixed tree", times["ours-manifest"], "agentex agents package", times["agentex"], ""
            )
        )
        agent = "agent: 2,000 kept, 20,000 in .venv"
        print(row(agent, times["ours-agent"], "agentex agents package", times["agentex-agent"], "(aim <= 0.07)"))
    print()
    print(
        f"  size    ours / gzip -6 (tar -czf)      {ours_size / 1e6:.2f} MB / {tar_size / 1e6:.2f} MB = "
        f"{ours_size / tar_size:.3f}  (aim <= 1.05)"
    )
    if args.agentex:
        print(
            f"  size    ours / agentex CLI              {agentex_sizes[0] / 1e6:.2f} MB / "
            f"{agentex_sizes[1] / 1e6:.2f} MB = {agentex_sizes[0] / agentex_sizes[1]:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
