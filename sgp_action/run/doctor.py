"""`doctor`: a read-only preflight of a configuration against the SGP server, printed as a checklist.

Each check is one line: ok, warn, FAIL or skip, what was found, and for a warning or a failure what to do. The exit
code is the one of the first failed check in list order: 2 for a local problem (inputs, manifest, environments,
build context), 3 for a server answer that blocks (unreachable, not SGP, key or account refused, lists refused);
0 when everything a deploy needs holds (warnings do not block).

The doctor never writes to SGP: it reaches the server only through `doctor_sgp.ReadOnlySGP`, whose HTTP session
refuses any method but GET and HEAD before a byte is sent. Forge checks are GETs as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sgp_action.errors import EXIT_API, EXIT_OK, ApiError, ConfigError
from sgp_action.packaging.archive import MAX_CONTEXT_BYTES
from sgp_action.run import doctor_local, doctor_sgp
from sgp_action.run.checklist import FAIL, Checklist, inert

if TYPE_CHECKING:
    from sgp_action.ci.event import WorkflowEvent
    from sgp_action.ci.runner import Runner
    from sgp_action.run.settings import Settings
    from sgp_action.run.state import RunState


def diagnose(
    settings: Settings, event: WorkflowEvent, *, max_context_bytes: int = MAX_CONTEXT_BYTES, timeout: float = 15.0
) -> Checklist:
    """Run every check in order; never raises an ActionError (each problem becomes a failed line)."""

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
