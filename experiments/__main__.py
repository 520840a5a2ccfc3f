"""`python -m experiments` is `python -m experiments.grid`."""

import sys

from experiments.grid import main

sys.exit(main())
