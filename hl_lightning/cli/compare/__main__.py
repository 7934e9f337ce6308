"""``python -m hl_lightning.cli.compare``: the ``hl-compare`` command."""

import sys

from hl_lightning.cli.compare.command import main

sys.exit(main())
