"""``python -m service`` runs the ``result-relay`` command."""

import sys

from service.cli import main

sys.exit(main())
