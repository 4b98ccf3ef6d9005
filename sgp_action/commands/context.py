"""`sgp-action context`: package a build context without uploading it (docs/build-context.md).

`--manifest PATH` uses the agentex layout; `--root DIR [--dockerfile REL] [--dockerignore REL]` is plain Docker.
`--list` prints the file members on stdout; `--output FILE` writes the tar.gz; the summary goes to stderr. Without
`--output`, the archive is built in a temporary folder for the summary (a check that it packages).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sgp_action.errors import EXIT_OK, InputError

if TYPE_CHECKING:
    from sgp_action.packaging.spec import BuildContextSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of `context`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, metavar="PATH", help="agentex manifest.yaml (manifest mode)")
    source.add_argument("--root", type=Path, metavar="DIR", help="context root (plain Docker mode)")
    parser.add_argument(
        "--dockerfile", metavar="REL", help="plain mode: Dockerfile relative to --root (default Dockerfile)"
    )
    parser.add_argument(
        "--dockerignore",
        metavar="REL",
        help="plain mode: ignore file relative to --root (default <dockerfile>.dockerignore, else .dockerignore)",
    )
    parser.add_argument("--list", action="store_true", help="print the file members, one per line, sorted")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the tar.gz here")
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="store what symlinks point at (only inside the workspace, never .git) instead of the links",
    )
    parser.add_argument("--level", type=int, default=6, choices=range(1, 10), metavar="1-9", help="gzip level (6)")
    parser.add_argument(
        "--threads", type=int, metavar="N", help="compression threads (default: the CPUs available, at most 8)"
    )


def execute(args: argparse.Namespace) -> int:
    """Package the context; ContextError / ManifestError reach the CLI layer as exit code 2."""
    from sgp_action.packaging.archive import BuildContextSpec, list_members

    if args.manifest is not None:
        if args.dockerfile or args.dockerignore:
            raise InputError("--dockerfile and --dockerignore go with --root; a manifest names its own")
        from sgp_action.packaging.manifest import load_manifest

        manifest = load_manifest(args.manifest)
        spec = BuildContextSpec.from_manifest(
            manifest, follow_symlinks=args.follow_symlinks, workspace=_workspace(manifest.directory)
        )
    else:
        spec = BuildContextSpec.plain(
            args.root,
            dockerfile=args.dockerfile or "Dockerfile",
            dockerignore=args.dockerignore,
            follow_symlinks=args.follow_symlinks,
            workspace=_workspace(args.root),
        )
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads must be at least 1")

    listed = False
    if args.list and args.output is None:
        # Listed before packaging: a context refused as too large is exactly when the list is wanted.
        _print_list(list_members(spec))
        listed = True

    if args.output is not None:
        _package(spec, args, args.output, listed)
    else:
        import tempfile  # only a run without --output needs it, and its import costs start-up time

        with tempfile.TemporaryDirectory(prefix="sgp-context-") as scratch:
            _package(spec, args, Path(scratch) / "context.tar.gz", listed)
    return EXIT_OK


def _package(spec: BuildContextSpec, args: argparse.Namespace, output: Path, listed: bool) -> None:
    """Write the archive to `output` and print its summary (and its members, with --list, unless printed already)."""
    from sgp_action.packaging.archive import build_context

    keep = bool(args.list) and not listed
    result = build_context(spec, output, level=args.level, threads=args.threads, keep_names=keep)
    if args.list and not listed:
        _print_list(result.members)
    for line in result.summary_lines():
        print(line, file=sys.stderr)
    for name in result.secret_like:
        print(f"warning: {name} looks like a secret; leave it out with .dockerignore", file=sys.stderr)
    if args.output is not None:
        print(f"Wrote {args.output}", file=sys.stderr)


def _workspace(folder: Path) -> Path:
    """Where the named paths must stay: as the action bounds its working-directory, the current directory's
    repository (or the directory itself) when it holds `folder`, else `folder`'s own (sgp_action.packaging.confine)."""
    from sgp_action.packaging.confine import is_within, workspace_bound

    github_workspace = os.environ.get("GITHUB_WORKSPACE")
    bound = workspace_bound(Path.cwd(), github_workspace)
    if is_within(os.path.realpath(folder), str(bound)):
        return bound
    return workspace_bound(folder, github_workspace)


def _print_list(names: list[str] | tuple[str, ...]) -> None:
    # Names are bytes on disk: undecodable ones go out as the bytes they are rather than failing.
    data = "".join(f"{name}\n" for name in names).encode("utf-8", "surrogateescape")
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stdout (an embedding program or a test capture)
        sys.stdout.write(data.decode("utf-8", "replace"))
        return
    sys.stdout.flush()
    buffer.write(data)
    buffer.flush()
