"""The grid runner's exit codes and the two errors that map to them (each reported in one line).

==== ==========================================================================================
0    every cell of the study is ``ok``
1    some cells ``failed`` or ``diverged``; the others are stored (a plain rerun retries failed ones)
2    bad usage: an argument, a study file, or a results directory of another specification
3    the environment stopped the run: disk full, no permission, a worker process lost, the study
     directory locked by another runner
130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM; what is stored stays, a rerun resumes
==== ==========================================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CELLS_NOT_OK = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


class UsageError(ValueError):
    """A bad command-line argument, study file or ``--out``: reported in one line, exit code 2."""


class EnvironmentFailure(RuntimeError):
    """The machine stopped the run (disk full, permissions, lost workers, a locked directory): exit 3."""
