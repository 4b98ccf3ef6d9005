"""`python -m sgp_action.emulator`: the same as `sgp-action emulator`."""

import sys

from sgp_action.emulator import main

sys.exit(main())
