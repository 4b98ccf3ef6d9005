"""`sgp-action context` as a user runs it: flags, stdout/stderr split, exit codes, unreadable files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sgp_action.ci import runner
from sgp_action.cli import main
from tests.support import keep_checkout_credentials

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = ROOT / "examples/sample-agent/manifest.yaml"
SAMPLE_FILES = [
    ".dockerignore",
    "Dockerfile",
    "sample-agent/.dockerignore",
    "sample-agent/Dockerfile",
    "sample-agent/environments.yaml",
    "sample-agent/manifest.yaml",
    "sample-agent/project/__init__.py",
    "sample-agent/project/acp.py",
    "sample-agent/requirements.txt",
]


def run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "sgp_action", "context", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_list_in_manifest_mode() -> None:
    done = run("--manifest", str(SAMPLE_MANIFEST), "--list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == SAMPLE_FILES
    # The whole summary of docs/architecture.md#commands, without --output too: files, raw and compressed bytes, hash,
    # largest.
    assert "9 files" in done.stderr and "raw" in done.stderr and "compressed" in done.stderr
    assert "Working-tree hash: " in done.stderr and "Largest: " in done.stderr


def test_output_writes_the_archive_and_summary_goes_to_stderr(tmp_path: Path) -> None:
    out = tmp_path / "ctx.tar.gz"
    done = run("--manifest", str(SAMPLE_MANIFEST), "--output", str(out), "--list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == SAMPLE_FILES
    with tarfile.open(out) as tar:
        assert sorted(m.name for m in tar.getmembers() if not m.isdir()) == SAMPLE_FILES
    assert "Build context: 9 files" in done.stderr and "Working-tree hash: " in done.stderr
    assert "Largest: " in done.stderr and f"Wrote {out}" in done.stderr
    again = run("--manifest", str(SAMPLE_MANIFEST), "--output", str(tmp_path / "again.tgz"))
    assert again.stdout == "" and (tmp_path / "again.tgz").read_bytes() == out.read_bytes()


def test_plain_mode_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in {"build/app.Dockerfile": "FROM a\n", "src/a.py": "", ".env": "K=v\n", "skip.txt": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "ignore").write_text("skip.txt\n")
    code = main(
        [
            "context",
            "--root",
            str(tmp_path),
            "--dockerfile",
            "build/app.Dockerfile",
            "--dockerignore",
            "ignore",
            "--list",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines() == [".env", "build/app.Dockerfile", "ignore", "src/a.py"]
    code = main(
        ["context", "--root", str(tmp_path), "--dockerfile", "build/app.Dockerfile", "--level", "1", "--threads", "1"]
    )
    captured = capsys.readouterr()
    assert code == 0 and captured.out == ""
    assert "warning: .env looks like a secret" in captured.err and "Working-tree hash" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root", "examples/sample-agent", "--dockerfile", "Nope"], "Dockerfile"),
        (["--manifest", "examples/sample-agent/nope.yaml"], "manifest not found"),
        (["--manifest", str(SAMPLE_MANIFEST), "--dockerfile", "X"], "--dockerfile and --dockerignore go with --root"),
        (["--root", "examples/sample-agent", "--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process-wide Runner keeps the stdout it first saw; give this test's capture a fresh one.
    monkeypatch.setattr(runner, "_DEFAULT", None)
    assert main(["context", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args", [[], ["--root", "a", "--manifest", "b"], ["--root", "a", "--level", "0"]])
def test_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", *args]) == 2
    assert "usage:" in capsys.readouterr().err


# --- the workspace bound ----------------------------------------------------------------------------------------

AGENT_MANIFEST = """build:
  context: {root: .., include_paths: [agent], dockerfile: agent/Dockerfile, dockerignore: DOCKERIGNORE}
agent: {name: agent, acp_type: sync, description: d}
"""


def agent_tree(top: Path, dockerignore: str = "agent/.dockerignore") -> Path:
    """`top/agent/manifest.yaml` in the agentex layout (context root `..`); returns the manifest."""
    (top / "agent").mkdir(parents=True)
    (top / "agent/Dockerfile").write_text("FROM a\n")
    (top / "agent/.dockerignore").write_text("*.log\n")
    (top / "agent/manifest.yaml").write_text(AGENT_MANIFEST.replace("DOCKERIGNORE", dockerignore))
    return top / "agent/manifest.yaml"


@pytest.fixture
def fresh_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    # The process-wide Runner keeps the stdout it first saw; give this test's capture a fresh one.
    monkeypatch.setattr(runner, "_DEFAULT", None)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)


@pytest.mark.usefixtures("fresh_runner")
def test_git_config_as_dockerignore_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = agent_tree(tmp_path, dockerignore=".git/config")
    token = keep_checkout_credentials(tmp_path)
    out = tmp_path / "out.tgz"
    assert main(["context", "--manifest", str(manifest), "--output", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"`build.context.dockerignore` resolves to {tmp_path.resolve()}/.git/config, inside a .git" in captured.err
    assert not out.exists() and token not in captured.out + captured.err


@pytest.mark.usefixtures("fresh_runner")
def test_plain_mode_dockerignore_linked_into_git_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agent_tree(tmp_path)
    keep_checkout_credentials(tmp_path)
    (tmp_path / ".dockerignore").symlink_to(".git/config")
    assert main(["context", "--root", str(tmp_path), "--dockerfile", "agent/Dockerfile", "--list"]) == 2
    assert "the dockerignore file .dockerignore resolves to" in capsys.readouterr().err


@pytest.mark.usefixtures("fresh_runner")
def test_without_a_repository_the_current_directory_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`root: ..` of a folder outside any repository: fine from the folder above, refused from inside or elsewhere."""
    manifest = agent_tree(tmp_path / "project")
    monkeypatch.chdir(tmp_path / "project")
    assert main(["context", "--manifest", "agent/manifest.yaml", "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        ".dockerignore",
        "Dockerfile",
        "agent/.dockerignore",
        "agent/Dockerfile",
        "agent/manifest.yaml",
    ]
    for cwd in (tmp_path / "project/agent", ROOT):
        monkeypatch.chdir(cwd)
        assert main(["context", "--manifest", str(manifest), "--list"]) == 2
        assert "`build.context.root` resolves to" in capsys.readouterr().err
    # On a runner, GITHUB_WORKSPACE bounds a checkout without .git.
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "project"))
    assert main(["context", "--manifest", str(manifest), "--list"]) == 0


# --- unreadable files ------------------------------------------------------------------------------------------
# Permission bits do not stop root (CAP_DAC_OVERRIDE), so as root the CLI runs under setpriv with the two
# file-permission capabilities dropped from its bounding set: a real EACCES, no monkeypatching.


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sgp-unreadable-"))
    yield path
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o755)
    shutil.rmtree(path)


def without_dac() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root: setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE for this test")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--")


def test_unreadable_file_is_an_error_naming_it(shared_dir: Path) -> None:
    for name in ("Dockerfile", "ok.txt", "locked.txt", "ignored.txt", "private/inner.txt"):
        (shared_dir / name).parent.mkdir(exist_ok=True)
        (shared_dir / name).write_text(name)
    (shared_dir / ".dockerignore").write_text("ignored.txt\nprivate\n")
    os.chmod(shared_dir / "ignored.txt", 0)
    os.chmod(shared_dir / "private", 0)
    out = shared_dir.parent / f"{shared_dir.name}.tgz"
    # Excluded files and folders are never opened: an unreadable one is fine.
    (shared_dir / "locked.txt").chmod(0o644)
    done = run("--root", str(shared_dir), "--output", str(out), prefix=without_dac())
    assert done.returncode == 0, done.stderr
    out.unlink()
    os.chmod(shared_dir / "locked.txt", 0)
    done = run("--root", str(shared_dir), "--output", str(out), prefix=without_dac())
    assert done.returncode == 2
    assert "cannot read locked.txt" in done.stderr and "Permission denied" in done.stderr
    assert not out.exists()


def test_unreadable_folder_is_an_error_naming_it(shared_dir: Path) -> None:
    (shared_dir / "Dockerfile").write_text("FROM a\n")
    (shared_dir / "closed").mkdir()
    (shared_dir / "closed/file").write_text("x")
    os.chmod(shared_dir / "closed", 0)
    done = run("--root", str(shared_dir), "--list", prefix=without_dac())
    assert done.returncode == 2
    assert "cannot read the folder closed" in done.stderr
