"""DownScaleXR: how a CNN's early downsampling operator shapes accuracy, bias, data efficiency and latency."""

__version__ = "0.1.0"
