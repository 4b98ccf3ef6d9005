"""`detect`: exactly the agents whose build inputs changed, on a real git repository with two agents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sgp_action.cli import main
from sgp_action.demo import run_git
from sgp_action.run.detect import changed_agents, detect_changes, find_manifests, repository_agents, summary_markdown

pytestmark = pytest.mark.skipif(not __import__("shutil").which("git"), reason="git is needed")

ZERO = "0" * 40


def _manifest(name: str, includes: list[str], dockerfile: str, dockerignore: str | None = None) -> str:
    lines = ["build:", "  context:", "    root: ..", "    include_paths:"]
    lines += [f"      - {inc}" for inc in includes]
    lines.append(f"    dockerfile: {dockerfile}")
    if dockerignore:
        lines.append(f"    dockerignore: {dockerignore}")
    lines += ["agent:", f"  name: {name}", "  acp_type: sync", "  description: test agent"]
    return "\n".join(lines) + "\n"


FILES = {
    # alpha: its own folder plus a shared library folder; its Dockerfile lives in a shared docker/ folder.
    "agents/alpha/manifest.yaml": _manifest("alpha", ["alpha", "lib"], "docker/alpha.Dockerfile"),
    "agents/alpha/environments.yaml": "dev:\n  auth:\n    principal: x\n",
    "agents/alpha/app.py": "print('alpha')\n",
    "agents/lib/util.py": "X = 1\n",
    "agents/docker/alpha.Dockerfile": "FROM scratch\n",
    "agents/docker/unused.Dockerfile": "FROM scratch\n",
    "agents/beta/manifest.yaml": _manifest("beta", ["beta"], "beta/Dockerfile", "beta/.dockerignore"),
    "agents/beta/Dockerfile": "FROM scratch\n",
    "agents/beta/.dockerignore": "*.log\n",
    "agents/beta/app.py": "print('beta')\n",
    "README.md": "monorepo\n",
    # never searched: vendored copies are not agents
    "node_modules/pkg/manifest.yaml": "not: a manifest\n",
    ".venv/lib/manifest.yaml": "not: a manifest\n",
}

ALPHA = {"manifest": "agents/alpha/manifest.yaml", "agent": "alpha"}
BETA = {"manifest": "agents/beta/manifest.yaml", "agent": "beta"}


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "mono"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "two agents")
    return root, run_git(root, "rev-parse", "HEAD")


def _commit(root: Path, changes: dict[str, str | None]) -> str:
    for rel, text in changes.items():
        path = root / rel
        if text is None:
            run_git(root, "rm", "-q", rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "change")
    return run_git(root, "rev-parse", "HEAD")


def test_find_manifests_skips_vendored_folders(repo: tuple[Path, str]) -> None:
    root, _ = repo
    found = [p.relative_to(root).as_posix() for p in find_manifests(root)]
    assert found == ["agents/alpha/manifest.yaml", "agents/beta/manifest.yaml"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"agents/alpha/app.py": "print('changed')\n"}, [ALPHA]),
        ({"agents/beta/app.py": "print('changed')\n"}, [BETA]),
        ({"agents/lib/util.py": "X = 2\n"}, [ALPHA]),
        ({"agents/docker/alpha.Dockerfile": "FROM busybox\n"}, [ALPHA]),
        ({"agents/beta/.dockerignore": "*.tmp\n"}, [BETA]),
        ({"agents/alpha/environments.yaml": "prod:\n  auth:\n    principal: y\n"}, [ALPHA]),
        ({"agents/beta/manifest.yaml": FILES["agents/beta/manifest.yaml"] + "# touched\n"}, [BETA]),
        ({"README.md": "changed\n"}, []),
        ({"agents/docker/unused.Dockerfile": "FROM busybox\n"}, []),
        ({"agents/alphabet/x.py": "similar prefix, other folder\n"}, []),
        ({"agents/beta/app.py": None, "agents/alpha/new.py": "new\n"}, [ALPHA, BETA]),
    ],
)
def test_lists_exactly_the_agents_whose_inputs_changed(
    repo: tuple[Path, str], changes: dict[str, str | None], expected: list[dict[str, str]]
) -> None:
    root, base = repo
    head = _commit(root, changes)
    assert changed_agents(root, base, head) == expected


@pytest.mark.parametrize("base", [ZERO, "", None])
def test_no_base_lists_every_agent(repo: tuple[Path, str], base: str | None) -> None:
    root, _ = repo
    head = _commit(root, {"README.md": "changed\n"})
    assert changed_agents(root, base, head) == [ALPHA, BETA]


def test_a_base_missing_from_the_clone_lists_every_agent(repo: tuple[Path, str]) -> None:
    root, _ = repo
    head = _commit(root, {"README.md": "changed\n"})
    assert changed_agents(root, "1234567" * 5 + "89abc", head) == [ALPHA, BETA]


def test_an_invalid_manifest_is_skipped_not_fatal(repo: tuple[Path, str]) -> None:
    root, base = repo
    head = _commit(root, {"agents/gamma/manifest.yaml": "agent: [not valid\n", "agents/alpha/app.py": "x\n"})
    assert changed_agents(root, base, head) == [ALPHA]


def test_works_from_a_subfolder(repo: tuple[Path, str]) -> None:
    root, base = repo
    head = _commit(root, {"agents/beta/app.py": "x\n"})
    assert changed_agents(root / "agents" / "alpha", base, head) == [BETA]


def test_cli_prints_the_matrix(repo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, base = repo
    head = _commit(root, {"agents/alpha/app.py": "x\n"})
    assert main(["detect", "--base", base, "--head", head, "--root", str(root)]) == 0
    assert json.loads(capsys.readouterr().out) == [ALPHA]


def test_cli_bad_revision_exits_2(repo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, base = repo
    assert main(["detect", "--base", base, "--head", "no-such-rev", "--root", str(root)]) == 2
    assert "no-such-rev" in capsys.readouterr().err


def test_action_command_detect_writes_the_matrix_output(repo: tuple[Path, str], tmp_path: Path) -> None:
    from sgp_action.ci.event import load_event
    from sgp_action.ci.runner import Runner
    from sgp_action.demo import parse_output_file
    from sgp_action.run.pipeline import run_pipeline
    from sgp_action.run.settings import load_settings

    root, base = repo
    head = _commit(root, {"agents/beta/Dockerfile": "FROM busybox\n"})
    event_path, output = tmp_path / "event.json", tmp_path / "github_output"
    event_path.write_text(json.dumps({"ref": "refs/heads/main", "before": base, "after": head}), encoding="utf-8")
    output.write_text("", encoding="utf-8")
    env = {
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_WORKSPACE": str(root),
        "INPUT_COMMAND": "detect",
    }
    event = load_event(env)
    outcome = run_pipeline(load_settings(env, event=event, cwd=root), event, Runner(environ=env, stream=io.StringIO()))
    outputs = parse_output_file(output.read_text(encoding="utf-8"))
    assert (outcome.exit_code, outputs["result"]) == (0, "success")
    assert json.loads(outputs["matrix"]) == [BETA]


def test_repository_agents_from_anywhere_in_the_checkout(repo: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = repo
    _commit(root, {"agents/gamma/manifest.yaml": "agent: [not valid\n"})  # skipped, not fatal
    assert repository_agents(root / "agents" / "beta") == frozenset({ALPHA["agent"], BETA["agent"]})
    bare = tmp_path / "no-checkout"
    bare.mkdir()
    assert repository_agents(bare) == frozenset()


def test_the_summary_names_each_agent_and_the_paths_that_changed(repo: tuple[Path, str]) -> None:
    root, base = repo
    head = _commit(root, {"agents/alpha/app.py": "x\n", "agents/alpha/more.py": "y\n"})
    text = summary_markdown(detect_changes(root, base, head))
    assert "#### Changed agents: 1" in text
    assert "| `alpha` | `agents/alpha/manifest.yaml` | changed: `agents/alpha/app.py`, `agents/alpha/more.py` |" in text
    everything = summary_markdown(detect_changes(root, None, head))
    assert everything.count("no usable base commit") == 2


def test_the_summary_of_no_change_says_so(repo: tuple[Path, str]) -> None:
    root, base = repo
    head = _commit(root, {"README.md": "changed\n"})
    assert "No agent's build inputs changed" in summary_markdown(detect_changes(root, base, head))
