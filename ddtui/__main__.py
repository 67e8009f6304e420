"""`python -m ddtui` runs the `ddtui` command."""

import sys

from .cli import main

sys.exit(main())
