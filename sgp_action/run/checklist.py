"""The doctor's checklist: one line per check (ok, warn, FAIL or skip), its exit code, its text for the log and the
job summary. Shared by `doctor`, `doctor_local` and `doctor_sgp`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from sgp_action.ci.report import md_code
from sgp_action.errors import EXIT_API, EXIT_CONFIG, EXIT_OK

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
