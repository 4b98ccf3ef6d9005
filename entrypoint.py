#!/usr/bin/env python3
"""Entry point used by action.yml: the same program as `python -m sgp_action`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sgp_action.cli import main

if __name__ == "__main__":
    sys.exit(main())
