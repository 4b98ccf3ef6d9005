"""One run of the action: validate everything, then build / deploy / tear down, and always report.

Order matters (issue 4, docs/architecture.md#one-run):

1. the settings and the event are already parsed (the command module does it, after masking the secrets);
2. `auto` is resolved from the event; a fork pull request without the key is skipped (`result=skipped`, exit 0);
3. every local input is checked and the context packaged **before the first API request**, so a bad input exits 2
   with nothing created; `dry-run` stops here and prints the plan;
4. the phases run; any error becomes an `Outcome` with the exit code of docs/architecture.md#errors-and-exit-codes;
5. the outputs and the job summary are written on every path, failure and cancellation included.

`run_pipeline` never calls `sys.exit`: the CLI (`commands/run.py`) and the demo both use it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sgp_action.api.models import Build, Phase
from sgp_action.ci.comment import PrComment, update_pr_comment
from sgp_action.ci.event import resolve_command
from sgp_action.ci.report import Report, format_timestamp
from sgp_action.ci.runner import report_error
from sgp_action.errors import EXIT_OK, ActionError, BuildFailed, Cancelled, InputError
from sgp_action.packaging import archive
from sgp_action.packaging.confine import workspace_bound
from sgp_action.packaging.manifest import Manifest, load_environments, load_manifest
from sgp_action.packaging.provenance import collect_provenance, head_commit
from sgp_action.packaging.spec import BuildContextSpec
from sgp_action.run import cleanup, detect, doctor
from sgp_action.run.build_phase import BuildPhase, BuildSpec
from sgp_action.run.cancel import CANCEL_BUDGET_SECONDS, WORKER_GRACE_SECONDS, CancelToken, RemoteWork
from sgp_action.run.deploy_phase import DeployPhase, DeploySpec
from sgp_action.run.github import deployment_url, finish_deployment, start_deployment
from sgp_action.run.state import ClientFactory, RunState, default_client_factory
from sgp_action.run.teardown import replace_previous, run_teardown

if TYPE_CHECKING:
    from sgp_action.ci.deployments import GitHubDeployments
    from sgp_action.ci.event import WorkflowEvent
    from sgp_action.ci.runner import Runner
    from sgp_action.run.settings import Settings

log = logging.getLogger(__name__)

#: Commands this module runs itself; the others are handed the RunState.
PHASE_COMMANDS = ("preview", "deploy", "build", "teardown")
DELEGATED_COMMANDS: dict[str, Callable[[RunState], None]] = {
    "cleanup": cleanup.run,
    "detect": detect.run,
    "doctor": doctor.run,
}
#: Share of the cancel budget a worker spends on the remote cleanup (it must end within the supervisor's grace).
CLEANUP_BUDGET_SECONDS = WORKER_GRACE_SECONDS - 0.5
#: After a cancellation, the most the GitHub deployment's final status may take, a start still in flight included.
CANCEL_STATUS_SECONDS = 1.5
#: What is left for the main thread when it abandons a stuck worker (budget minus grace, minus time to write).
ABANDON_BUDGET_SECONDS = CANCEL_BUDGET_SECONDS - WORKER_GRACE_SECONDS - 0.5


@dataclass
class Outcome:
    """How a run ended: the `result` output, the process exit code, the report, the error if any."""

    result: str
    exit_code: int
    report: Report
    error: ActionError | None = None


@dataclass
class Plan:
    """What a preview/deploy/build run will do, worked out locally before any request."""

    agent_name: str = ""
    image_name: str = ""
    image_tag: str = ""
    manifest_text: str = ""
    environment_key: str | None = None
    environment_text: str = ""
    preview_label: str | None = None
    expires_at: datetime | None = None
    build: BuildSpec | None = None
    context_lines: list[str] = field(default_factory=list)


class Pipeline:
    """One run of `sgp-action run`; `run()` returns an Outcome and never raises an ActionError."""

    def __init__(
        self,
        settings: Settings,
        event: WorkflowEvent,
        runner: Runner,
        *,
        client_factory: ClientFactory = default_client_factory,
        token: CancelToken | None = None,
    ) -> None:
        self.ctx = RunState(
            settings=settings,
            event=event,
            runner=runner,
            command=settings.command,
            token=token or CancelToken(),
            report=Report(command=settings.command),
            remote=RemoteWork(),
            client_factory=client_factory,
        )
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._github: GitHubDeployments | None = None

    # --- entry points -------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Run the command to the end; outputs and summary are written whatever happens."""
        ctx = self.ctx
        interrupted_at: float | None = None
        try:
            with ctx.report.timed("total"):
                result = self._run()
            ctx.report.result = result
            outcome = Outcome(result, EXIT_OK, ctx.report)
        except (Cancelled, KeyboardInterrupt) as exc:  # KeyboardInterrupt: run in the main thread, no supervisor
            interrupted_at = time.monotonic()
            stopped = ctx.remote.stop(ctx.client, CLEANUP_BUDGET_SECONDS) if ctx._client is not None else []
            reason = exc if isinstance(exc, Cancelled) else Cancelled("the run was interrupted")
            outcome = self._failed(Cancelled(self._cancel_message(reason, stopped)))
        except ActionError as exc:
            outcome = self._failed(exc)
        except Exception as exc:  # a bug: still report, so the workflow sees result=failure
            log.debug("unexpected error", exc_info=True)
            error = ActionError(f"internal error: {type(exc).__name__}: {exc}")
            error.__traceback__ = exc.__traceback__
            outcome = self._failed(error)
        finally:
            self._cleanup_local()
            ctx.close()
        deadline = self._status_deadline(interrupted_at)
        finish_deployment(ctx, self._github, outcome.exit_code, deadline=deadline)  # a forge failure is a warning
        update_pr_comment(self._pr_comment())  # never raises: a forge failure is a warning
        ctx.report.write(ctx.runner)
        return outcome

    def abandon(self) -> Outcome:
        """Called from the main thread when the worker did not stop in time after a signal: stop, report, return."""
        ctx = self.ctx
        stopped = ctx.remote.stop(ctx.client, ABANDON_BUDGET_SECONDS) if ctx._client is not None else []
        outcome = self._failed(Cancelled(self._cancel_message(Cancelled(ctx.token.reason), stopped)))
        ctx.report.write(ctx.runner)
        return outcome

    # --- outcome helpers ----------------------------------------------------------------------------------------

    def _status_deadline(self, interrupted_at: float | None) -> float | None:
        """None for a run that ended by itself; after a cancellation, when the deployment's final status must end.

        The worker must have ended, its outputs written, within the supervisor's grace, or the main thread abandons
        it and exits without it; that grace ends long before the runner's SIGTERM (7.5 s after its SIGINT). So the
        status gets only what the remote cleanup left of CLEANUP_BUDGET_SECONDS, and CANCEL_STATUS_SECONDS at most.
        """
        began = self.ctx.token.cancelled_at
        if began is None:
            began = interrupted_at
        if began is None:
            return None
        return min(began + CLEANUP_BUDGET_SECONDS, time.monotonic() + CANCEL_STATUS_SECONDS)

    def _pr_comment(self) -> PrComment:
        ctx, settings = self.ctx, self.ctx.settings
        try:
            agent = load_manifest(settings.manifest).agent_name
        except (ActionError, OSError):  # the comment still says how the run ended
            agent = ""
        return PrComment(
            event=ctx.event,
            runner=ctx.runner,
            report=ctx.report,
            command=ctx.command,
            agent=agent,
            started_at=ctx.started_at,
            forge_token=settings.github_token,
            enabled=not settings.dry_run and settings.should_comment(ctx.event.is_pull_request),
            cancelled=ctx.token.cancelled,
            secrets=(settings.api_key,),
        )

    def _failed(self, exc: ActionError) -> Outcome:
        report = self.ctx.report
        report.result = exc.result
        # The whole message: the summary shows the first line in its table and the rest (log tail, events) fenced.
        report.message = str(exc) or type(exc).__name__
        report_error(exc, debug=self.ctx.settings.debug, runner=self.ctx.runner)
        return Outcome(exc.result, exc.exit_code, report, exc)

    @staticmethod
    def _cancel_message(exc: Cancelled, stopped: list[str]) -> str:
        done = "; ".join(stopped) if stopped else "no remote work was under way"
        return f"{exc}: {done}"

    def _cleanup_local(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    # --- the run ------------------------------------------------------------------------------------------------

    def _run(self) -> str:
        ctx = self.ctx
        command = resolve_command(ctx.settings.command, ctx.event)
        ctx.command = ctx.report.command = command
        ctx.runner.info(f"sgp-action {command} ({self._describe_event()})")
        if command in DELEGATED_COMMANDS:
            return self._delegate(command)
        if command not in PHASE_COMMANDS:
            raise InputError(
                f"unknown command {command!r}: use one of auto, {', '.join(PHASE_COMMANDS)}, cleanup, detect, doctor"
            )
        if command == "teardown":
            return run_teardown(ctx)
        plan = self._plan(command)
        if ctx.settings.dry_run:
            ctx.report.dry_run = True
            self._print_plan(command, plan)
            return "success"
        ctx.token.check()
        if command != "build":
            label = plan.preview_label if command == "preview" else None
            self._github = start_deployment(ctx, agent=plan.agent_name, label=label, environment=plan.environment_key)
        build = self._build(plan)
        if command == "build":
            return "success"
        self._deploy(command, plan, build)
        if ctx.settings.wait:  # a deployment not waited for may not be up yet: nothing to open
            ctx.report.deployment_url = deployment_url(ctx, plan.agent_name)
        return "success"

    def _describe_event(self) -> str:
        event = self.ctx.event
        parts = [event.event_name or "no event"]
        if event.pr_number:
            parts.append(f"PR #{event.pr_number}")
        if event.head_sha:
            parts.append(event.head_sha[:7])
        return ", ".join(parts)

    def _delegate(self, command: str) -> str:
        DELEGATED_COMMANDS[command](self.ctx)
        return str(self.ctx.report.result or "success")

    # --- local preparation (no network) -------------------------------------------------------------------------

    def _plan(self, command: str) -> Plan:
        """Read the manifest and environments, work out names, label and expiry, package the context."""
        ctx, settings, event = self.ctx, self.ctx.settings, self.ctx.event
        manifest = load_manifest(settings.manifest)
        plan = Plan(agent_name=manifest.agent_name, manifest_text=manifest.text)
        plan.image_name = settings.image_name or manifest.image_name
        # README.md#inputs-and-outputs: the deployed commit's short SHA (the PR head on PRs, from the payload; outside
        # Actions the checked-out commit), else the manifest's tag, else latest.
        sha = event.head_sha or ("" if settings.image_tag else head_commit(manifest.context_root) or "")
        plan.image_tag = settings.image_tag or sha[:7] or manifest.image_tag or "latest"
        ctx.report.image_name, ctx.report.image_tag = plan.image_name, plan.image_tag
        # A build never uses the environment, but a named one that does not exist is a mistake worth stopping on.
        if command in ("preview", "deploy") or settings.environment:
            environments = load_environments(settings.environments)
            plan.environment_key, plan.environment_text = environments.select(settings.environment)
        if command == "preview":
            plan.preview_label = settings.preview_label
            if not plan.preview_label:
                raise InputError("a preview needs a label: set preview-label, or run on a pull_request event")
            now = datetime.now(timezone.utc)
            plan.expires_at = settings.expires_at or now + timedelta(seconds=settings.preview_ttl)
            if plan.expires_at <= now:
                raise InputError(f"expires-at {format_timestamp(plan.expires_at)} is in the past")
            ctx.report.preview_label = plan.preview_label
        if settings.build_id:
            return plan
        plan.build = self._package(manifest, plan)
        return plan

    def _package(self, manifest: Manifest, plan: Plan) -> BuildSpec:
        ctx, settings = self.ctx, self.ctx.settings
        self._tempdir = tempfile.TemporaryDirectory(prefix="sgp-context-", dir=settings.temp_dir)
        output = Path(self._tempdir.name) / "context.tar.gz"
        with ctx.report.timed("packaging"), ctx.runner.group("Build context"):
            workspace = workspace_bound(settings.working_directory, ctx.runner.environ.get("GITHUB_WORKSPACE"))
            spec = BuildContextSpec.from_manifest(
                manifest, follow_symlinks=settings.follow_symlinks, workspace=workspace
            )
            # A cancel stops packaging at once; the member names are not kept (memory flat in the file count).
            result = archive.build_context(spec, output, check=ctx.token.check, keep_names=False)
            for line in result.summary_lines():
                ctx.runner.info(line)
            for path in result.secret_like:
                ctx.runner.warning(f"{path} looks like a secret and will be uploaded", title="Secret-like file")
        ctx.report.working_tree_hash = result.working_tree_hash
        event = ctx.event
        # The PR head SHA comes from the payload, never from GITHUB_SHA (a synthetic merge commit on GitHub).
        provenance = collect_provenance(
            manifest.context_root,
            commit=event.head_sha or None,
            ref=event.head_ref or event.ref or None,
            repo=f"{event.server_url.rstrip('/')}/{event.repository}"
            if event.server_url and event.repository
            else None,
        )
        return BuildSpec(
            agent_name=plan.agent_name,
            image_name=plan.image_name,
            image_tag=plan.image_tag,
            archive_path=result.path,
            working_tree_hash=result.working_tree_hash,
            build_args=settings.build_args,
            platform=settings.platform,
            source=provenance.as_fields(),
        )

    def _print_plan(self, command: str, plan: Plan) -> None:
        runner, settings = self.ctx.runner, self.ctx.settings
        with runner.group("Dry run: the plan (nothing is created)"):
            runner.info(f"command: {command}")
            runner.info(f"agent: {plan.agent_name}")
            runner.info(f"image: {plan.image_name}:{plan.image_tag}")
            if settings.build_id:
                runner.info(f"build: existing build {settings.build_id}")
            elif plan.build is not None:
                runner.info(f"build: upload the context above (working-tree hash {plan.build.working_tree_hash})")
                if settings.reuse_build:
                    runner.info("build: reuse a successful build with the same working-tree hash if there is one")
            if command == "preview":
                runner.info(f"deploy: preview {plan.preview_label}, expires {format_timestamp(plan.expires_at)}")
            elif command == "deploy":
                runner.info("deploy: production")
            if plan.environment_key:
                runner.info(f"environment: {plan.environment_key}")

    # --- remote phases ------------------------------------------------------------------------------------------

    def _build(self, plan: Plan) -> Build:
        ctx, settings = self.ctx, self.ctx.settings
        phase = BuildPhase(ctx.phase_env(), timeout=settings.build_timeout, agent_id=settings.agent_id)
        # Each phase is measured once (the waits measure themselves, so their log line and the summary agree).
        timed = ctx.report.timed
        if settings.build_id:
            with timed("build"), phase.limited(f"reading build {settings.build_id}"):
                build = ctx.client.get_build(settings.build_id)
            ctx.report.record_build(build, reused=True)
            if build.phase is not Phase.SUCCEEDED:
                raise BuildFailed(f"build {build.id} is {build.status}, not success: it cannot be deployed")
            ctx.runner.info(f"Deploying the existing build {build.id} ({build.image_name}:{build.image_tag})")
            return build
        assert plan.build is not None
        spec = plan.build
        follow = settings.wait or ctx.command != "build"
        if settings.reuse_build and spec.working_tree_hash:
            with timed("lookup"), phase.limited("looking for a build to reuse"):  # build-timeout counts from here
                reused = phase.find_reusable(spec.agent_name, spec.working_tree_hash, follow=follow)
            if reused is not None:
                ctx.report.record_build(reused, reused=True)
                ctx.runner.info(f"Reusing build {reused.id}: same agent and working-tree hash, status {reused.status}")
                return reused
        with timed("upload"):
            build = phase.create(spec)
        if not follow:
            return build
        with timed("build"):
            return phase.wait(build)

    def _deploy(self, command: str, plan: Plan, build: Build) -> None:
        ctx, settings = self.ctx, self.ctx.settings
        phase = DeployPhase(ctx.phase_env(), timeout=settings.deploy_timeout)
        preview = command == "preview"
        spec = DeploySpec(
            manifest_text=plan.manifest_text,
            environment_text=plan.environment_text,
            build_id=build.id,
            preview=preview,
            preview_label=plan.preview_label,
            expires_at=plan.expires_at,
        )
        with ctx.report.timed("deploy"):
            deployment = phase.create(spec)
        if not settings.wait:
            ctx.remote.deploying(None)
            return
        with ctx.report.timed("health"):
            deployment = phase.wait(deployment)
        if preview and settings.replace_previous:
            replace_previous(ctx.phase_env(), deployment, agent_name=plan.agent_name)


def run_pipeline(
    settings: Settings,
    event: WorkflowEvent,
    runner: Runner,
    *,
    client_factory: ClientFactory = default_client_factory,
    token: CancelToken | None = None,
) -> Outcome:
    """Run one command in this thread (no signal handling) and return its Outcome; never exits the process."""
    return Pipeline(settings, event, runner, client_factory=client_factory, token=token).run()
