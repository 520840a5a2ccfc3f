"""One integer seed -> independent, named random streams for torch and numpy.

Library code never touches global RNG state: every random function receives a generator made here.
Streams are derived by name (``"data"``, ``"init"``, ``"order"``, ...), so adding a new consumer
does not shift the numbers another consumer sees.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit integer determined by ``seed`` and the stream ``names``.

    Examples
    --------
    >>> derive_seed(0, "init") == derive_seed(0, "init")
    True
    >>> derive_seed(0, "init") != derive_seed(0, "order")
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    text = "/".join([str(int(seed)), *map(str, names)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def numpy_rng(seed: int, *names: object) -> np.random.Generator:
    """A numpy ``Generator`` for the stream ``names`` of ``seed``."""
    return np.random.default_rng(derive_seed(seed, *names))


def torch_generator(seed: int, *names: object) -> torch.Generator:
    """A CPU ``torch.Generator`` for the stream ``names`` of ``seed``."""
    import torch  # here, not at the top: analysis uses numpy_rng and should not pay torch's import

    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed(seed, *names))
    return gen
