"""The local SGP emulator (docs/emulator.md): a real HTTP server behaving like SGP's Build and Deploy API.

It lives apart from the action's code, which never imports it. Use it from tests as
`EmulatorServer(EmulatorConfig(...)).start()` (then `.url` and `.close()`), or from the command line as
`sgp-action emulator`.

`--variant NAME` (repeatable, or `POST /_emulator/variants` at run time) makes it answer the way another plausible
SGP server would where the platform's documents are silent: status-words, no-sort, no-has-more, delete-ended-404,
delete-ended-409, sse-resume, sse-tail, foreign-agent, epoch-times. `sgp_action.emulator.variants` describes each.
"""

from sgp_action.emulator.cli import add_arguments, config_from_args, main, serve
from sgp_action.emulator.config import EmulatorConfig
from sgp_action.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "add_arguments", "config_from_args", "main", "serve"]
