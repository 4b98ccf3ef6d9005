"""Where action.yml keeps the action's Python environment, so it is built once per runner and reused.

action.yml's "Python environment" step runs `python3 -m sgp_action.toolcache REQUIREMENTS` (standard library only:
it runs before any dependency is installed) to name the virtual environment
`${RUNNER_TOOL_CACHE:-$RUNNER_TEMP}/sgp-action/<key>`. The key changes whenever the pinned requirements or the
interpreter change, so an environment is never reused with the wrong packages or a Python it was not built for.

Provisioning it ahead of time (an offline self-hosted runner, or a test harness): create a virtual environment at
that path whose interpreter can import the requirements, then create the empty file `READY_MARKER` inside it; the
step reuses such an environment without calling pip.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path

READY_MARKER = ".sgp-action-ready"
CACHE_FOLDER = "sgp-action"


def environment_key(requirements: bytes, *, implementation: str, version: str, machine: str) -> str:
    """16 hex digits over the requirements file's bytes and the interpreter's identity."""
    digest = hashlib.sha256(requirements)
    digest.update(f"\0{implementation}\0{version}\0{machine}".encode())
    return digest.hexdigest()[:16]


def current_key(requirements: Path) -> str:
    """The key for `requirements` and the interpreter running this code."""
    return environment_key(
        requirements.read_bytes(),
        implementation=platform.python_implementation(),
        version=platform.python_version(),
        machine=platform.machine(),
    )


def main(argv: list[str]) -> int:
    """Print the key for the requirements file given as the only argument."""
    if len(argv) != 2:
        print("usage: python -m sgp_action.toolcache REQUIREMENTS_TXT", file=sys.stderr)
        return 2
    print(current_key(Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
