"""Fault injection for the emulator (docs/emulator.md#fault-specs): the failures a real SGP and a real network produce.

Specs are strings, the same on the command line (`--fault SPEC`) and in `POST /_emulator/faults` (a JSON list):

* `http-500=P`: that share (0..1) of API requests answers 500; `--seed` makes the choice reproducible;
* `rate-limit=N`: every Nth API request answers 429 with `Retry-After: 1`;
* `sse-drop-after=N`: a build-log stream replays from the first line and closes N lines past the furthest line an
  earlier connection to that build delivered (the first connection after N lines);
* `slow=S`: each API answer waits S seconds first;
* `lose-create-response`: the next build create is stored, then the connection is cut before the answer;
* `deploy-fail`: deployments created while it is set end FAILED with CrashLoopBackOff events and error logs;
* `sse-hold-open`: a build-log stream stays open, silent, after the build ended and its last line was sent (until
  the emulator stops, at most 5 minutes), as some proxies keep an idle stream.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

FAULT_NAMES = (
    "http-500",
    "rate-limit",
    "sse-drop-after",
    "slow",
    "lose-create-response",
    "deploy-fail",
    "sse-hold-open",
)


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message names the spec and the expected form."""


@dataclass(frozen=True)
class FaultSet:
    """The parsed, immutable set of active faults."""

    http_500: float = 0.0
    rate_limit: int = 0
    sse_drop_after: int = 0
    slow: float = 0.0
    lose_create_response: bool = False
    deploy_fail: bool = False
    sse_hold_open: bool = False

    def specs(self) -> list[str]:
        """The active faults written back as spec strings (what `GET /_emulator/faults` shows)."""
        out: list[str] = []
        if self.http_500:
            out.append(f"http-500={self.http_500:g}")
        if self.rate_limit:
            out.append(f"rate-limit={self.rate_limit}")
        if self.sse_drop_after:
            out.append(f"sse-drop-after={self.sse_drop_after}")
        if self.slow:
            out.append(f"slow={self.slow:g}")
        if self.lose_create_response:
            out.append("lose-create-response")
        if self.deploy_fail:
            out.append("deploy-fail")
        if self.sse_hold_open:
            out.append("sse-hold-open")
        return out


def _number(spec: str, value: str | None, kind: type[int] | type[float], low: float, high: float | None) -> float:
    if value is None:
        raise FaultSpecError(f"fault {spec!r} needs a value, e.g. {spec}=1")
    try:
        number = kind(value)
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: {value!r} is not a {kind.__name__}") from None
    if number < low or (high is not None and number > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise FaultSpecError(f"fault {spec!r}: the value must be {bound}")
    return number


def parse_faults(specs: list[str]) -> FaultSet:
    """Parse fault specs into a `FaultSet`; raise `FaultSpecError` naming the first bad one."""
    values: dict[str, float | bool] = {}
    for raw in specs:
        if not isinstance(raw, str):
            raise FaultSpecError(f"fault specs are strings, got {raw!r}")
        name, sep, value = raw.strip().partition("=")
        arg = value.strip() if sep else None
        name = name.strip()
        if name == "http-500":
            values["http_500"] = _number(raw, arg, float, 0.0, 1.0)
        elif name == "rate-limit":
            values["rate_limit"] = int(_number(raw, arg, int, 1, None))
        elif name == "sse-drop-after":
            values["sse_drop_after"] = int(_number(raw, arg, int, 1, None))
        elif name == "slow":
            values["slow"] = _number(raw, arg, float, 0.0, 600.0)
        elif name in ("lose-create-response", "deploy-fail", "sse-hold-open"):
            if arg is not None:
                raise FaultSpecError(f"fault {name!r} takes no value")
            values[name.replace("-", "_")] = True
        else:
            raise FaultSpecError(f"unknown fault {raw!r}; known: {', '.join(FAULT_NAMES)}")
    return FaultSet(**values)  # type: ignore[arg-type]


class FaultInjector:
    """Thread-safe holder of the active faults and of the counters they need."""

    def __init__(self, faults: FaultSet | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults = faults or FaultSet()
        self._random = random.Random(seed)
        self._requests = 0
        self._lose_armed = self._faults.lose_create_response

    @property
    def current(self) -> FaultSet:
        """The active fault set."""
        with self._lock:
            return self._faults

    def replace(self, faults: FaultSet) -> None:
        """Swap in a new fault set (an empty one clears everything) and reset the request counter."""
        with self._lock:
            self._faults = faults
            self._requests = 0
            self._lose_armed = faults.lose_create_response

    def before_request(self) -> tuple[float, int | None]:
        """Decide the fate of one API request: (seconds to wait first, forced status code or None)."""
        with self._lock:
            self._requests += 1
            faults = self._faults
            forced: int | None = None
            if faults.rate_limit and self._requests % faults.rate_limit == 0:
                forced = 429
            elif faults.http_500 and self._random.random() < faults.http_500:
                forced = 500
            return faults.slow, forced

    def take_lose_create(self) -> bool:
        """True once per arming of `lose-create-response`: this build create loses its answer."""
        with self._lock:
            armed = self._lose_armed
            self._lose_armed = False
            return armed
