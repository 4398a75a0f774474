"""``python -m tote`` and the entry script of the single binary (``make binary``)."""

import sys

from tote.cli import main

sys.exit(main())
