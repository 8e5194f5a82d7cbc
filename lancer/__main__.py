"""`python -m lancer`: the lancer command."""

import sys

from lancer.cli.main import main

sys.exit(main())
