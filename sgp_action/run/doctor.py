"""`doctor`: a read-only preflight of a configuration against the SGP server, printed as a checklist.

Each check is one line: ok, warn, FAIL or skip, what was found, and for a warning or a failure what to do. The exit
code is the one of the first failed check in list order: 2 for a local problem (inputs, manifest, environments,
build context), 3 for a server answer that blocks (unreachable, not SGP, key or account refused, lists refused);
0 when everything a deploy needs holds (warnings do not block).

The doctor never writes to SGP: it reaches the server only through `doctor_sgp.ReadOnlySGP`, whose HTTP session
refuses any method but GET and HEAD before a byte is sent. Forge checks are GETs as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sgp_action.ci.report import md_code
from sgp_action.errors import EXIT_API, EXIT_CONFIG, EXIT_OK, ApiError, ConfigError
from sgp_action.packaging.archive import MAX_CONTEXT_BYTES

if TYPE_CHECKING:
    from sgp_action.ci.event import WorkflowEvent
    from sgp_action.ci.runner import Runner
    from sgp_action.run.pipeline import RunState
    from sgp_action.run.settings import Settings

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
_MARKS = {OK: "[ok]  ", WARN: "[warn]", FAIL: "[FAIL]", SKIP: "[skip]"}
_ICONS = {OK: "✅", WARN: "⚠️", FAIL: "❌", SKIP: "⚪"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def inert(text: object, limit: int = 160) -> str:
    """Server or file text made safe for one checklist line: no control characters, one line, cut to `limit`."""
    flat = " ".join(_CONTROL.sub(" ", str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Check:
    """One line of the checklist; `code` is the exit code a failure stands for (2 local, 3 server)."""

    name: str
    state: str
    detail: str
    fix: str = ""
    code: int = EXIT_OK


@dataclass
class Checklist:
    """The checks in the order they ran."""

    checks: list[Check] = field(default_factory=list)

    def ok(self, name: str, detail: str) -> None:
        """Record a check that holds."""
        self.checks.append(Check(name, OK, detail))

    def warn(self, name: str, detail: str, fix: str = "") -> None:
        """Record something worth knowing that does not block a deploy."""
        self.checks.append(Check(name, WARN, detail, fix))

    def fail(self, name: str, detail: str, fix: str, *, server: bool) -> None:
        """Record a check that blocks a deploy: a server answer (exit 3) or a local problem (exit 2)."""
        self.checks.append(Check(name, FAIL, detail, fix, EXIT_API if server else EXIT_CONFIG))

    def skip(self, name: str, why: str) -> None:
        """Record a check that could not run because an earlier one failed or it does not apply."""
        self.checks.append(Check(name, SKIP, why))

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def failed(self, name: str) -> bool:
        """Whether the check called `name` failed (or never ran)."""
        return not any(c.name == name and c.state in (OK, WARN) for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, else the code of the first failure."""
        return next((c.code for c in self.checks if c.state == FAIL), EXIT_OK)

    def lines(self) -> list[str]:
        """The checklist as log lines."""
        out = []
        for check in self.checks:
            line = f"{_MARKS[check.state]} {check.name}: {check.detail}"
            if check.fix and check.state in (WARN, FAIL):
                line += f" -> fix: {check.fix}"
            out.append(line)
        return out

    def markdown(self) -> str:
        """The checklist for the job summary (every text made inert)."""
        verdict = {EXIT_OK: "ready to deploy", EXIT_CONFIG: "a local problem blocks", EXIT_API: "the server blocks"}
        rows = ["### sgp-action doctor", "", f"**Verdict:** {verdict[self.exit_code]}", ""]
        rows += ["| | Check | Found | What to do |", "|---|---|---|---|"]
        for check in self.checks:
            fix = check.fix if check.state in (WARN, FAIL) else ""
            cells = (md_code(check.name), md_code(check.detail), md_code(fix, empty=""))
            rows.append(f"| {_ICONS[check.state]} | {cells[0]} | {cells[1]} | {cells[2]} |")
        return "\n".join(rows) + "\n"


def diagnose(
    settings: Settings, event: WorkflowEvent, *, max_context_bytes: int = MAX_CONTEXT_BYTES, timeout: float = 15.0
) -> Checklist:
    """Run every check in order; never raises an ActionError (each problem becomes a failed line)."""
    from sgp_action.run import doctor_local, doctor_sgp

    checks = Checklist()
    with doctor_sgp.ReadOnlySGP(settings, timeout=timeout) as sgp:
        server_ok = doctor_sgp.check_server(checks, sgp)
        manifest = doctor_local.check_files(checks, settings)
        if manifest is None:
            checks.skip("agent", "needs a valid manifest")
        elif not server_ok:
            checks.skip("agent", "needs a server that lists builds and deployments")
        else:
            doctor_sgp.check_agent(checks, sgp, manifest.agent_name)
    if manifest is None:
        checks.skip("build context", "needs a valid manifest")
    elif settings.build_id:
        checks.ok("build context", f"not packaged: build-id {inert(settings.build_id)} is deployed as it is")
    else:
        doctor_local.check_context(checks, settings, manifest, max_context_bytes)
    doctor_local.check_auto(checks, settings, event)
    doctor_local.check_forge(checks, settings, event, timeout=timeout)
    return checks


def report(checks: Checklist, runner: Runner) -> int:
    """Print the checklist, append it to the job summary, and return the exit code."""
    with runner.group("sgp-action doctor"):
        for line in checks.lines():
            runner.info(line)
    # Outside a runner the summary would be printed, the same checklist a second time as a table.
    if runner.in_actions or any(runner.environ.get(n) for n in ("GITHUB_STEP_SUMMARY", "GITEA_STEP_SUMMARY")):
        runner.append_summary(checks.markdown())
    code = checks.exit_code
    runner.info("doctor: ready to deploy" if code == EXIT_OK else f"doctor: not ready (exit {code})")
    return code


class DoctorFailed(ConfigError):
    """The doctor found a local problem (exit 2)."""


class DoctorServerFailed(ApiError):
    """The doctor found a server answer that blocks a deploy (exit 3)."""


def run(ctx: RunState) -> None:
    """`command: doctor` inside `sgp-action run`: check, print, summarise; raise when something blocks."""
    checks = diagnose(ctx.settings, ctx.event)
    code = report(checks, ctx.runner)
    first = next((c for c in checks if c.state == FAIL), None)
    if first is None:
        ctx.report.result = "success"
        return
    message = f"doctor: {first.name}: {first.detail}; fix: {first.fix}"
    raise DoctorServerFailed(message) if code == EXIT_API else DoctorFailed(message)
