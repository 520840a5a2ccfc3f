"""The one exception of the package: a level that cannot apply to a model (recorded, never fatal)."""


class UnsupportedCompression(Exception):
    """A compression level cannot apply to this model; the message says why.

    :func:`downscalexr.compress.apply_compression` turns it into ``status="unsupported"`` with the
    message as ``reason``. Anything else raised by a level is a bug and propagates.
    """
