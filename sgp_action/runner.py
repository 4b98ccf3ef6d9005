"""All talk with the Actions runner: outputs, job summary, masks, groups, annotations."""

from __future__ import annotations

import sys
import traceback

from sgp_action.errors import ActionError


def escape_data(text: str) -> str:
    """Escape a workflow-command message the way actions/toolkit does (`%`, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def report_error(exc: ActionError, *, debug: bool = False) -> None:
    """Print one readable line for the error, as an `::error::` annotation (traceback only with debug)."""
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"::error::{escape_data(str(exc))}", flush=True)
