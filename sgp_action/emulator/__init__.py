"""The local SGP emulator (docs/emulator.md): a real HTTP server behaving like SGP's Build and Deploy API.

It lives apart from the action's code, which never imports it. Use it from tests as
`EmulatorServer(EmulatorConfig(...)).start()` (then `.url` and `.close()`), or from the command line as
`sgp-action emulator`.
"""

from sgp_action.emulator.cli import add_arguments, config_from_args, main, serve
from sgp_action.emulator.config import EmulatorConfig
from sgp_action.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "add_arguments", "config_from_args", "main", "serve"]
