"""`python -m sgp_action`: the same program as `entrypoint.py` and the `sgp-action` script."""

import sys

from sgp_action.cli import main

sys.exit(main())
