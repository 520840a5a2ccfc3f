"""Compression levels applied to a trained model: pruning, int8 quantization, and what they cost to store.

``apply_compression(level_name, model, seed=..., ...)`` returns the compressed copy and a facts dict
(status ``ok`` / ``unsupported`` with the reason, sparsity conv vs head, non-zero parameters, FLOPs,
serialized and gzip state-dict bytes, quantization path and engine). Levels are registered by name
(:func:`list_levels`); see :mod:`.pruning`, :mod:`.channels` and :mod:`.quantize` for what each method
does and which operators it cannot handle.
"""

from downscalexr.compress._errors import UnsupportedCompression
from downscalexr.compress.apply import FACT_KEYS, apply_compression
from downscalexr.compress.finetune import FinetuneConfig, finetune
from downscalexr.compress.levels import CompressionLevel, get_level, list_levels, register_level
from downscalexr.compress.size import state_dict_size

__all__ = [
    "FACT_KEYS",
    "CompressionLevel",
    "FinetuneConfig",
    "UnsupportedCompression",
    "apply_compression",
    "finetune",
    "get_level",
    "list_levels",
    "register_level",
    "state_dict_size",
]
