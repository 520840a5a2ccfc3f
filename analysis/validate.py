"""``python -m analysis.validate``: the coverage simulation study of the report's intervals.

The code lives in :mod:`analysis.simulation.validation`; this module keeps the documented command.
"""

from analysis.simulation.validation import main

if __name__ == "__main__":
    raise SystemExit(main())
