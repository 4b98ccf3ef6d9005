"""Pull requests from forks: skipped without secrets, warned about when secrets reach their code
(docs/architecture.md#phases).

Checked before the inputs are validated, so that a fork's missing key is a notice and `result=skipped`, not an input
error; and a fork's code run under `pull_request_target` with the key is never built silently (SECURITY.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from sgp_action.ci.event import WorkflowEvent
from sgp_action.ci.report import Report
from sgp_action.ci.runner import Runner


def skip_fork_pull_request(
    event: WorkflowEvent, environ: Mapping[str, str], overrides: Mapping[str, str | None], runner: Runner
) -> bool:
    """A pull request from a fork gets no secrets: without an api-key, skip with a notice and `result=skipped`.

    Checked before the inputs are validated, so the missing key is not reported as an error
    (docs/architecture.md#phases).
    """
    from sgp_action.run.inputs import raw_inputs

    if not (event.is_pull_request and event.is_fork):
        return False
    if "api-key" in raw_inputs(environ, overrides):
        if event.event_name == "pull_request_target":
            # Secrets reach a fork's code only through pull_request_target: allowed (a gated workflow may mean it),
            # never silently (SECURITY.md).
            runner.warning(
                f"pull request #{event.pr_number} comes from a fork and runs under pull_request_target: its code is "
                "packaged and built with this repository's SGP credentials. Deploy fork code only after review "
                "(e.g. an environment with required reviewers); prefer the pull_request event.",
                title="Fork code with secrets",
            )
        return False
    message = (
        f"pull request #{event.pr_number} comes from a fork, which receives no secrets: no api-key, so nothing is "
        "built or deployed. A maintainer can re-run it from a branch of this repository."
    )
    runner.notice(message, title="SGP preview skipped")
    Report(command="preview", result="skipped", message=message).write(runner)
    return True
