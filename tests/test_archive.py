"""The build context: membership in both modes, archive properties, reproducibility, errors and the hash."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import random
import socket
import stat
import struct
import tarfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from sgp_action.errors import Cancelled, ContextError
from sgp_action.packaging.archive import (
    BuildContextSpec,
    build_context,
    cli_ignore_patterns,
    is_secret_like,
    list_members,
)
from sgp_action.packaging.manifest import load_manifest

MANIFEST = """\
build:
  context:
    root: ../..
    include_paths: [agents/echo]
    dockerfile: agents/echo/Dockerfile
    dockerignore: agents/echo/.dockerignore
agent:
  name: echo-bot
  acp_type: sync
  description: echoes
"""

# Docker-only catches: `agents/echo/build/` and `**/node_modules/` (the agentex CLI's basename fnmatch never matches
# a pattern with a `/`). CLI-only catches: `*.log`, `.env*`, `.venv`, `__pycache__`, `*.py[cod]` (Docker anchors
# them at the context root). `!agents/echo/keep.log` puts a file back for Docker, but the CLI still leaves it out.
DOCKERIGNORE = """\
# both tools read this file
agents/echo/build/
**/node_modules/
*.log   # CLI: comment dropped; Docker: the whole line is one pattern
*.log
.env*
.venv
__pycache__
*.py[cod]
!agents/echo/keep.log
"""

TREE = {
    "README.md": "root, outside include_paths\n",
    "lib/shared.py": "shared = 1\n",
    "top.log": "root-level log\n",
    "agents/other/main.py": "other agent\n",
    "agents/echo/manifest.yaml": MANIFEST,
    "agents/echo/environments.yaml": "environments: {}\n",
    "agents/echo/Dockerfile": "FROM python:3.12\nCOPY agents/echo /app\n",
    "agents/echo/.dockerignore": DOCKERIGNORE,
    "agents/echo/.env": "OPENAI_API_KEY=sk-secret\n",
    "agents/echo/.env.local": "X=1\n",
    "agents/echo/.venv/bin/python": "#!/bin/sh\n",
    "agents/echo/project/acp.py": "print('hi')\n",
    "agents/echo/project/__pycache__/acp.cpython-311.pyc": "\0\0",
    "agents/echo/project/util.pyc": "\0",
    "agents/echo/project/data.txt": "data\n",
    "agents/echo/build/out.bin": "\1\2",
    "agents/echo/node_modules/x/index.js": "js\n",
    "agents/echo/debug.log": "log\n",
    "agents/echo/keep.log": "kept for Docker, not for the CLI\n",
    "agents/echo/.git/config": "[remote] url = https://token@example.com/x\n",
    ".git/HEAD": "ref: refs/heads/main\n",
    ".git/config": "[core]\n",
}


def make_tree(
    root: Path, files: Mapping[str, str | bytes], *, order: Callable[[list[str]], list[str]] = sorted
) -> Path:
    for name in order(list(files)):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = files[name]
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def relink(link: Path, target: str) -> None:
    """Point the symbolic link `link` at `target` instead."""
    os.remove(link)
    os.symlink(target, link)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "agents/echo/empty").mkdir(parents=True)
    return make_tree(tmp_path, TREE)


def echo_spec(repo: Path, **kwargs: bool) -> BuildContextSpec:
    # The workspace is named: `agents/echo/.git` would make the agent's folder the nearest repository.
    return BuildContextSpec.from_manifest(load_manifest(repo / "agents/echo/manifest.yaml"), workspace=repo, **kwargs)


def members_of(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz", encoding="utf-8", errors="surrogateescape") as tar:
        return {info.name: info for info in tar.getmembers()}


def test_manifest_mode_membership(repo: Path, tmp_path: Path) -> None:
    spec = echo_spec(repo)
    assert spec.mode == "manifest" and spec.root == repo.resolve() and spec.workspace == repo.resolve()
    expected = [
        ".dockerignore",
        "Dockerfile",
        "agents/echo/.dockerignore",
        "agents/echo/Dockerfile",
        "agents/echo/environments.yaml",
        "agents/echo/manifest.yaml",
        "agents/echo/project/acp.py",
        "agents/echo/project/data.txt",
    ]
    assert list_members(spec) == expected
    result = build_context(spec, tmp_path / "out.tar.gz")
    assert result.members == tuple(expected) and result.file_count == len(expected)
    archived = members_of(result.path)
    # Directory entries: the include path's parents, kept folders, the empty one; none for excluded ones.
    assert sorted(n for n, i in archived.items() if i.isdir()) == [
        "agents",
        "agents/echo",
        "agents/echo/empty",
        "agents/echo/project",
    ]
    with tarfile.open(result.path, "r:gz") as tar:
        for name, source in (("Dockerfile", "agents/echo/Dockerfile"), (".dockerignore", "agents/echo/.dockerignore")):
            member = tar.extractfile(name)
            assert member is not None and member.read() == (repo / source).read_bytes()


def test_plain_mode_is_exactly_docker(repo: Path) -> None:
    spec = BuildContextSpec.plain(repo, dockerfile="agents/echo/Dockerfile", dockerignore="agents/echo/.dockerignore")
    names = list_members(spec)
    # What only the agentex CLI would leave out is in; what Docker leaves out is out; .git never.
    for kept in (
        "README.md",
        "lib/shared.py",
        "agents/other/main.py",
        "agents/echo/.env",
        "agents/echo/.venv/bin/python",
        "agents/echo/project/__pycache__/acp.cpython-311.pyc",
        "agents/echo/debug.log",
        "agents/echo/keep.log",
        "agents/echo/Dockerfile",
        "agents/echo/.dockerignore",
    ):
        assert kept in names
    for left in ("top.log", "agents/echo/build/out.bin", "agents/echo/node_modules/x/index.js", "Dockerfile"):
        assert left not in names
    assert not [n for n in names if ".git/" in n or n.startswith(".git")]
    assert names == sorted(names, key=lambda n: n.encode())


@pytest.mark.parametrize(
    ("files", "kwargs", "expected"),
    [
        # The chosen Dockerfile and the ignore file are always sent, even when the patterns exclude them
        # (docs/build-context.md#files-that-are-always-sent).
        ({".dockerignore": "*\n", "Dockerfile": "FROM a\n", "src/a.py": ""}, {}, [".dockerignore", "Dockerfile"]),
        # Only the chosen Dockerfile is protected: with -f Dockerfile.alt, `*` excludes the root Dockerfile.
        (
            {".dockerignore": "*\n", "Dockerfile": "", "Dockerfile.alt": ""},
            {"dockerfile": "Dockerfile.alt"},
            [".dockerignore", "Dockerfile.alt"],
        ),
        # BuildKit: <dockerfile>.dockerignore wins over the root .dockerignore.
        (
            {
                ".dockerignore": "a.py\n",
                "b/app.Dockerfile": "",
                "b/app.Dockerfile.dockerignore": "b.py\n",
                "a.py": "",
                "b.py": "",
            },
            {"dockerfile": "b/app.Dockerfile"},
            [".dockerignore", "a.py", "b/app.Dockerfile", "b/app.Dockerfile.dockerignore"],
        ),
        # An explicit --dockerignore wins over both.
        (
            {".dockerignore": "a.py\n", "custom.ignore": "b.py\n", "Dockerfile": "", "a.py": "", "b.py": ""},
            {"dockerignore": "custom.ignore"},
            [".dockerignore", "Dockerfile", "a.py", "custom.ignore"],
        ),
        # Trailing slash does not mean directories only; `dir/**` keeps the folder itself.
        (
            {".dockerignore": "a.py/\n", "Dockerfile": "", "a.py": "", "b.py": ""},
            {},
            [".dockerignore", "Dockerfile", "b.py"],
        ),
        # Re-inclusion inside an excluded folder (the folder is walked because an exception names it).
        (
            {".dockerignore": "foo*\n!foo/bar2\n", "Dockerfile": "", "foo/bar1": "", "foo/bar2": "", "bar": ""},
            {},
            [".dockerignore", "Dockerfile", "bar", "foo/bar2"],
        ),
    ],
)
def test_plain_mode_table(tmp_path: Path, files: dict[str, str], kwargs: dict[str, Any], expected: list[str]) -> None:
    make_tree(tmp_path, files)
    assert list_members(BuildContextSpec.plain(tmp_path, **kwargs)) == expected


def test_reincluded_file_gets_its_parent_directory_entry(tmp_path: Path) -> None:
    make_tree(tmp_path, {".dockerignore": "foo*\n!foo/bar2\n", "Dockerfile": "", "foo/bar1": "", "foo/bar2": ""})
    names = members_of(build_context(BuildContextSpec.plain(tmp_path), tmp_path / "o.tgz").path)
    assert "foo" in names and names["foo"].isdir() and "foo/bar1" not in names


def test_excluded_folders_are_not_walked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, {"Dockerfile": "", "node_modules/a/b.js": "", "src/a.py": "", ".git/x": ""})
    walked: list[str] = []
    real_scandir = os.scandir

    def spy(path: str) -> object:
        walked.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)  # the one `os` module the file walk uses
    (tmp_path / ".dockerignore").write_text("node_modules\n")
    assert list_members(BuildContextSpec.plain(tmp_path)) == [".dockerignore", "Dockerfile", "src/a.py"]
    assert sorted(walked) == [".", "src"]
    walked.clear()
    (tmp_path / ".dockerignore").write_text("node_modules\n!node_modules/a/b.js\n")
    assert "node_modules/a/b.js" in list_members(BuildContextSpec.plain(tmp_path))
    assert "node_modules" in walked


def test_cli_ignore_patterns_reading() -> None:
    assert cli_ignore_patterns("# c\n  a.py # note\n\n!b\n\tc/ \n") == ("a.py", "!b", "c/")


# --- archive properties ------------------------------------------------------------------------------------


@pytest.fixture
def special(tmp_path: Path) -> Path:
    root = tmp_path / "special"
    make_tree(root, {"Dockerfile": "FROM a\n", "run.sh": "#!/bin/sh\n", "secret.txt": "s\n", "sub/x": "x\n", "u/f": ""})
    os.chmod(root / "run.sh", 0o751)
    os.chmod(root / "secret.txt", 0o600)
    os.chmod(root / "sub", 0o1777)
    os.chmod(root / "u/f", 0o4755)
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("../../outside", root / "out-link")
    os.symlink("missing", root / "broken-link")
    os.symlink("sub", root / "dir-link")
    os.mkfifo(root / "fifo")
    return root


def test_archive_properties(special: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(special)  # bind by a short relative name: AF_UNIX paths are limited to ~108 bytes
    try:
        sock.bind("app.sock")
    finally:
        os.chdir(cwd)
    caplog.set_level(logging.INFO, logger="sgp_action.packaging.walk")
    try:
        result = build_context(BuildContextSpec.plain(special), tmp_path / "o.tgz")
    finally:
        sock.close()
    archived = members_of(result.path)
    assert list(archived) == sorted(archived, key=lambda n: (n + "/" if archived[n].isdir() else n).encode())
    assert "app.sock" not in archived and "fifo" not in archived
    assert "socket app.sock" in caplog.text and "fifo" in caplog.text
    for info in archived.values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 0)
        assert not info.name.startswith("/") and ".." not in info.name.split("/")
    assert archived["run.sh"].mode == 0o751 and archived["secret.txt"].mode == 0o600
    assert archived["sub"].isdir() and archived["sub"].mode == 0o1777
    assert archived["u/f"].mode == 0o4755
    links = {n: (i.linkname, i.mode) for n, i in archived.items() if i.issym()}
    assert links == {
        "abs-link": ("/etc/passwd", 0o777),
        "out-link": ("../../outside", 0o777),
        "broken-link": ("missing", 0o777),
        "dir-link": ("sub", 0o777),
    }
    assert "dir-link/x" not in archived  # a linked folder is not entered
    raw = gzip.decompress(result.path.read_bytes())
    assert raw[257:265] == b"ustar\x0000"  # USTAR magic and version
    assert len(raw) % tarfile.RECORDSIZE == 0
    header = result.path.read_bytes()[:10]
    assert header[3] == 0 and header[4:8] == b"\0\0\0\0"  # no FNAME, mtime 0


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    files = {f"d{i % 3}/f{i}.txt": f"content {i}\n" * i for i in range(30)} | {"Dockerfile": "FROM a\n"}
    one = make_tree(tmp_path / "one", files)
    two = make_tree(tmp_path / "two", files, order=lambda names: sorted(names, reverse=True))
    for i, path in enumerate(sorted(two.rglob("*"))):
        os.utime(path, (1_000_000 + i, 2_000_000_000 - i * 7.5))
    (two / "d0").chmod(0o755)
    a = build_context(BuildContextSpec.plain(one), tmp_path / "a.tgz", threads=1)
    b = build_context(BuildContextSpec.plain(two), tmp_path / "b.tgz", threads=2)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.working_tree_hash == b.working_tree_hash


def test_long_and_undecodable_names(tmp_path: Path) -> None:
    long_name = "/".join(["segment-" + "x" * 40] * 4) + "/file.txt"
    make_tree(tmp_path, {"Dockerfile": "", long_name: "long\n"})
    os.makedirs(os.path.join(os.fsencode(tmp_path), b"bytes"), exist_ok=True)
    with open(os.path.join(os.fsencode(tmp_path), b"bytes", b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"latin-1 name\n")
    result = build_context(BuildContextSpec.plain(tmp_path), tmp_path.parent / f"{tmp_path.name}.tgz")
    names = members_of(result.path)
    assert long_name in names
    assert os.fsdecode(b"bytes/caf\xe9.txt") in names
    assert os.fsdecode(b"bytes/caf\xe9.txt") in result.members


def test_hard_links_are_regular_files(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "", "a.txt": "same inode\n"})
    os.link(tmp_path / "a.txt", tmp_path / "b.txt")
    out = tmp_path.parent / f"{tmp_path.name}.tgz"
    with tarfile.open(build_context(BuildContextSpec.plain(tmp_path), out).path) as tar:
        for name in ("a.txt", "b.txt"):
            member = tar.extractfile(name)
            assert tar.getmember(name).isreg() and member is not None and member.read() == b"same inode\n"


# --- symlinks with follow-symlinks ---------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    repo = make_tree(tmp_path / "repo", {".git/HEAD": "", "shared/lib.py": "lib\n", "ctx/Dockerfile": "", "ctx/a": "a"})
    os.symlink("../shared/lib.py", repo / "ctx/lib.py")
    os.symlink("../shared", repo / "ctx/shared")
    return repo


def test_follow_symlinks_inside_the_repository(linked: Path, tmp_path: Path) -> None:
    spec = BuildContextSpec.plain(linked / "ctx", follow_symlinks=True)
    assert spec.workspace == linked.resolve()
    result = build_context(spec, tmp_path / "o.tgz")
    archived = members_of(result.path)
    assert archived["lib.py"].isreg() and archived["shared"].isdir() and archived["shared/lib.py"].isreg()
    without = members_of(build_context(BuildContextSpec.plain(linked / "ctx"), tmp_path / "p.tgz").path)
    assert without["lib.py"].issym() and "shared/lib.py" not in without


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/etc/hostname", "symlink ctx/escape -> /etc/hostname resolves to /etc/hostname, outside the workspace"),
        ("../../..", "outside the workspace"),
        ("../.git", "inside a .git folder"),
        ("nowhere", "points at nothing"),
        ("..", "makes a loop"),
    ],
)
def test_follow_symlinks_errors(linked: Path, tmp_path: Path, target: str, message: str) -> None:
    os.symlink(target, linked / "ctx/escape")
    spec = BuildContextSpec.plain(linked, dockerfile="ctx/Dockerfile", follow_symlinks=True)
    with pytest.raises(ContextError, match=message):
        build_context(spec, tmp_path / "o.tgz")
    assert not (tmp_path / "o.tgz").exists()


# --- errors --------------------------------------------------------------------------------------------------


def test_empty_context(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real/Dockerfile": "FROM a\n"})
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    os.symlink("../real/Dockerfile", ctx / "Dockerfile")  # a link, not a regular file: nothing to build from
    with pytest.raises(ContextError, match="holds no files"):
        build_context(BuildContextSpec.plain(ctx, workspace=tmp_path), tmp_path / "o.tgz")
    assert not (tmp_path / "o.tgz").exists()


def test_size_limit(tmp_path: Path) -> None:
    make_tree(tmp_path / "ctx", {"Dockerfile": "", "blob.bin": os.urandom(300_000)})
    with pytest.raises(ContextError, match=r"over the 97\.7 KiB upload limit"):
        build_context(BuildContextSpec.plain(tmp_path / "ctx"), tmp_path / "o.tgz", max_bytes=100_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]  # no output, no partial file
    assert build_context(
        BuildContextSpec.plain(tmp_path / "ctx"), tmp_path / "o.tgz", max_bytes=400_000
    ).compressed_bytes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dockerfile": "Nope"}, "Dockerfile .*Nope not found"),
        ({"dockerfile": "../Dockerfile"}, "must name a file inside the context root"),
        ({"dockerignore": "nope.ignore"}, "dockerignore file .*nope.ignore not found"),
    ],
)
def test_plain_spec_errors(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    (tmp_path / "Dockerfile").write_text("")
    with pytest.raises(ContextError, match=message):
        BuildContextSpec.plain(tmp_path, **kwargs)


def test_bad_dockerignore_names_the_line(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "", ".dockerignore": "a\n[\n"})
    with pytest.raises(ContextError, match=r"\.dockerignore.*line 2|line 2.*\.dockerignore"):
        list_members(BuildContextSpec.plain(tmp_path))


# --- secrets and the hash ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        (".env", True),
        (".env.production", True),
        ("server.pem", True),
        ("tls.key", True),
        ("id_rsa", True),
        ("id_ed25519", True),
        ("id_rsa.pub", False),
        ("credentials.json", True),
        ("credentials", True),
        (".npmrc", True),
        (".pypirc", True),
        (".netrc", True),
        ("keyboard.py", False),
        ("environment.py", False),
        ("README.md", False),
    ],
)
def test_secret_like_names(name: str, secret: bool) -> None:
    assert is_secret_like(name) is secret


def test_secret_like_reported(repo: Path, tmp_path: Path) -> None:
    make_tree(repo, {"agents/echo/project/tls.key": "k", "agents/echo/project/id_rsa.pub": "p"})
    spec = BuildContextSpec.plain(repo, dockerfile="agents/echo/Dockerfile", dockerignore="agents/echo/.dockerignore")
    result = build_context(spec, tmp_path / "o.tgz")
    assert result.secret_like == ("agents/echo/.env", "agents/echo/.env.local", "agents/echo/project/tls.key")
    assert any("agents/echo/.env" in line for line in result.summary_lines())
    manifest_mode = build_context(echo_spec(repo), tmp_path / "m.tgz")
    assert manifest_mode.secret_like == ("agents/echo/project/tls.key",)


def reference_hash(archive: Path) -> str:
    """The working-tree hash recomputed from the archive alone, following the module docstring."""
    digest = hashlib.sha256(b"sgp-action working-tree-hash v1\n")
    with tarfile.open(archive, "r:gz", encoding="utf-8", errors="surrogateescape") as tar:
        for info in tar:
            name = info.name.encode("utf-8", "surrogateescape")
            kind = b"d" if info.isdir() else b"l" if info.issym() else b"f"
            if info.isdir():
                payload = b""
            elif info.issym():
                payload = info.linkname.encode("utf-8", "surrogateescape")
            else:
                handle = tar.extractfile(info)
                assert handle is not None
                payload = handle.read()
            digest.update(struct.pack(">Q", len(name)) + name + kind + struct.pack(">I", info.mode))
            digest.update(struct.pack(">Q", len(payload)) + payload)
    return digest.hexdigest()


def test_hash_matches_its_definition(special: Path, tmp_path: Path) -> None:
    result = build_context(BuildContextSpec.plain(special), tmp_path / "o.tgz")
    assert result.working_tree_hash == reference_hash(result.path)


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "a.txt").chmod(0o755),
        lambda root: (root / "a.txt").write_text("A\n"),
        lambda root: (root / "a.txt").rename(root / "b.txt"),
        lambda root: (root / "d").rename(root / "e"),
        lambda root: (root / "d" / "empty").mkdir(),
        lambda root: relink(root / "link", "b.txt"),
        lambda root: (root / "d" / "x").write_bytes(b"x" * 10 + b"\0"),
    ],
    ids=["mode", "content", "rename", "folder-rename", "new-empty-folder", "link-target", "content-length"],
)
def test_hash_sensitivity(tmp_path: Path, change: Callable[[Path], object]) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": "", "a.txt": "a\n", "d/x": "x" * 10})
    os.symlink("a.txt", root / "link")
    before = build_context(BuildContextSpec.plain(root), tmp_path / "1.tgz").working_tree_hash
    assert build_context(BuildContextSpec.plain(root), tmp_path / "2.tgz").working_tree_hash == before
    os.utime(root / "a.txt", (1, 1))  # times never count
    assert build_context(BuildContextSpec.plain(root), tmp_path / "3.tgz").working_tree_hash == before
    change(root)
    assert build_context(BuildContextSpec.plain(root), tmp_path / "4.tgz").working_tree_hash != before


def test_summary(repo: Path, tmp_path: Path) -> None:
    make_tree(repo, {"agents/echo/project/big.bin": b"\0" * 5000})
    result = build_context(echo_spec(repo), tmp_path / "o.tgz")
    lines = result.summary_lines()
    assert lines[0].startswith(f"Build context: {result.file_count} files, ")
    assert lines[1] == f"Working-tree hash: {result.working_tree_hash}"
    assert lines[2].startswith("Largest: agents/echo/project/big.bin (4.9 KiB)")
    assert result.largest[0] == ("agents/echo/project/big.bin", 5000) and len(result.largest) == 5
    echo = repo / "agents/echo"
    # The Dockerfile and .dockerignore count twice: at the archive root and at their own paths.
    sources = ["Dockerfile", ".dockerignore"] * 2 + ["environments.yaml", "manifest.yaml", "project/acp.py"]
    sources += ["project/data.txt", "project/big.bin"]
    assert result.raw_bytes == sum((echo / name).stat().st_size for name in sources)
    assert result.compressed_bytes == result.path.stat().st_size


def test_mode_bits_kept_for_root_files(repo: Path, tmp_path: Path) -> None:
    os.chmod(repo / "agents/echo/Dockerfile", 0o640)
    result = build_context(echo_spec(repo), tmp_path / "o.tgz")
    archived = members_of(result.path)
    assert stat.S_IMODE(archived["Dockerfile"].mode) == 0o640 == archived["agents/echo/Dockerfile"].mode


def test_output_folder_missing(tmp_path: Path) -> None:
    make_tree(tmp_path / "ctx", {"Dockerfile": "FROM a\n"})
    with pytest.raises(ContextError, match=r"cannot write the archive .*nowhere"):
        build_context(BuildContextSpec.plain(tmp_path / "ctx"), tmp_path / "nowhere" / "o.tgz")


class CancelAt:
    """A `check` that counts its calls and raises Cancelled at call `at` (never when `at` is 0)."""

    def __init__(self, at: int = 0) -> None:
        self.at = at
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise Cancelled("the job was cancelled (SIGINT)")


@pytest.fixture
def large(tmp_path: Path) -> Path:
    """A context with a few small files and one 6 MiB file of seeded random bytes (six 1 MiB reads)."""
    noise = random.Random(6).randbytes(6 * 1024 * 1024)
    return make_tree(tmp_path / "ctx", {"Dockerfile": "FROM a\n", "a/one.txt": "1\n", "b/big.bin": noise})


def _pgzip_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pgzip")]


@pytest.mark.parametrize("where", ["walk", "members", "large file", "last call"])
def test_cancellation_check_stops_packaging_cleanly(large: Path, tmp_path: Path, where: str) -> None:
    full = CancelAt()
    build_context(BuildContextSpec.plain(large), tmp_path / "full.tgz", check=full)
    # At least once per folder walked, per member and per 1 MiB read of the large file.
    assert full.calls >= 3 + 6 + 6
    at = {"walk": 1, "members": 6, "large file": full.calls - 3, "last call": full.calls}[where]
    check = CancelAt(at)
    out = tmp_path / "out" / "context.tar.gz"
    out.parent.mkdir()
    with pytest.raises(Cancelled, match="SIGINT"):
        build_context(BuildContextSpec.plain(large), out, check=check, threads=2)
    assert check.calls == at  # nothing called the check after it raised
    assert list(out.parent.iterdir()) == []  # neither the archive nor its partial file
    assert _pgzip_threads() == []


def test_the_summary_line_counts_one_file_in_the_singular(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    result = build_context(BuildContextSpec.plain(tmp_path / "ctx"), tmp_path / "o.tgz")
    assert result.summary_lines()[0].startswith("Build context: 1 file, ")
