"""Permutation-invariant summaries of learned first-layer convolution kernels.

Channel order is arbitrary: two seeds learn the same filters in different output channels, and a
filter's sign and scale can be absorbed by the next layer. A plain mean of kernels over seeds therefore
cancels out. Every summary here is invariant to channel order, sign and scale:

* each kernel (one output x input channel slice) is scaled to unit L2 norm;
* the **mean absolute kernel** averages ``|k|`` over kernels and runs: where the weight mass sits;
* the **radial power spectrum** averages ``|FFT2(k)|^2`` (zero-padded) over rings of equal spatial
  frequency, in cycles per pixel: low-pass filters put their energy near 0, edge and checkerboard
  filters near the Nyquist frequency 0.5, white noise spreads it evenly;
* the **high-frequency fraction** is the share of a kernel's energy above ``cutoff`` cycles per pixel
  (0.25, half the Nyquist frequency), a one-number summary with an interval over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats.intervals import t_band

PAD = 16  # FFT size: fine enough to resolve the spectrum of a 3x3 to 7x7 kernel
N_RADII = 8
CUTOFF = 0.25


def kernel_stacks(kernels: pd.DataFrame, layer: str | None = None) -> dict[str, np.ndarray]:
    """Each run's kernels as an ``(out_channels * in_channels, size, size)`` array.

    Parameters
    ----------
    kernels : DataFrame
        The ``kernels`` table (``run_id, layer, out_channel, in_channel, row, col, value``).
    layer : str, optional
        Keep one layer; by default each run's first layer name in sorted order.

    Raises
    ------
    ValueError
        If a run's kernel entries do not fill a dense ``out x in x rows x cols`` grid.
    """
    out = {}
    for run_id, part in kernels.groupby("run_id", sort=True):
        name = layer if layer is not None else sorted(part["layer"].astype(str))[0]
        part = part[part["layer"] == name]
        dims = [int(part[c].max()) + 1 for c in ("out_channel", "in_channel", "row", "col")]
        if int(np.prod(dims)) != len(part):
            raise ValueError(
                f"run {run_id}, layer {name}: {len(part)} kernel entries do not fill a {dims} grid; "
                "the kernels table must hold every weight of the layer once"
            )
        w = np.zeros(dims)
        w[tuple(part[c].to_numpy(int) for c in ("out_channel", "in_channel", "row", "col"))] = part["value"]
        out[str(run_id)] = w.reshape(dims[0] * dims[1], dims[2], dims[3])
    return out


def unit_norm(stack: np.ndarray) -> np.ndarray:
    """Kernels of ``stack`` (n x rows x cols) scaled to unit L2 norm; all-zero kernels are dropped."""
    norms = np.sqrt((stack**2).sum(axis=(1, 2)))
    keep = norms > 0
    return stack[keep] / norms[keep, None, None]


def _radius(pad: int) -> np.ndarray:
    f = np.fft.fftfreq(pad)
    return np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def power_spectra(stack: np.ndarray, pad: int = PAD) -> np.ndarray:
    """Power spectrum of each unit-norm kernel, normalised to sum 1: ``(n, pad, pad)``."""
    unit = unit_norm(stack)
    power = np.abs(np.fft.fft2(unit, s=(pad, pad))) ** 2
    return power / power.sum(axis=(1, 2), keepdims=True)


def radial_power(stack: np.ndarray, pad: int = PAD, n_radii: int = N_RADII) -> tuple[np.ndarray, np.ndarray]:
    """Mean radial power spectrum of a stack of kernels.

    Returns
    -------
    tuple of ndarray
        ``(radius, power)``: ring centres in cycles per pixel (0 to Nyquist 0.5; the corners beyond
        0.5 join the last ring) and the mean share of energy per frequency sample in each ring, so a
        white-noise kernel gives a flat line.
    """
    r = np.minimum(_radius(pad), 0.5 - 1e-9)
    ring = np.floor(r / 0.5 * n_radii).astype(int)
    spectra = power_spectra(stack, pad).mean(axis=0)
    power = np.bincount(ring.ravel(), weights=spectra.ravel(), minlength=n_radii)
    per_sample = power / np.bincount(ring.ravel(), minlength=n_radii)
    centres = (np.arange(n_radii) + 0.5) * 0.5 / n_radii
    return centres, per_sample * pad * pad


def high_frequency_fraction(stack: np.ndarray, cutoff: float = CUTOFF, pad: int = PAD) -> float:
    """Mean share of kernel energy above ``cutoff`` cycles per pixel (white noise: about 0.8)."""
    spectra = power_spectra(stack, pad)
    return float(spectra[:, _radius(pad) > cutoff].sum(axis=1).mean())


def kernel_summaries(
    kernels: pd.DataFrame, runs: pd.DataFrame, by=("variant", "permute"), alpha: float = 0.05
) -> dict:
    """Per-run and per-group kernel summaries for the report.

    Parameters
    ----------
    kernels : DataFrame
        The ``kernels`` table.
    runs : DataFrame
        The ``runs`` table (ok runs with kernels are used); supplies the ``by`` columns and ``seed``.
    by : sequence of str
        Grouping of runs, e.g. variant x permute.
    alpha : float
        1 - level of the t-band of the mean spectrum over runs.

    Returns
    -------
    dict
        ``per_run`` (``run_id, seed, *by, n_kernels, size, high_frequency_fraction``), ``mean_abs``
        (group key -> mean absolute unit-norm kernel, ``size x size``), ``spectra`` (``*by, radius,
        power, low, high, n_runs``; a t-band over runs) and ``size`` (kernel sizes found).
    """
    ok = runs[runs["status"] == "ok"].set_index("run_id")
    stacks = {k: v for k, v in kernel_stacks(kernels).items() if k in ok.index}
    rows, groups = [], {}
    for run_id, stack in stacks.items():
        key = tuple(ok.loc[run_id, list(by)])
        rows.append(
            {
                "run_id": run_id,
                "seed": int(ok.loc[run_id, "seed"]),
                **dict(zip(by, key, strict=True)),
                "n_kernels": len(stack),
                "size": stack.shape[1],
                "high_frequency_fraction": high_frequency_fraction(stack),
            }
        )
        groups.setdefault(key, []).append(stack)
    per_run = pd.DataFrame(
        rows, columns=["run_id", "seed", *by, "n_kernels", "size", "high_frequency_fraction"]
    )
    mean_abs, spec_rows = {}, []
    for key, group in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        sizes = {s.shape[1:] for s in group}
        if len(sizes) == 1:
            mean_abs[key] = np.mean([np.abs(unit_norm(s)).mean(axis=0) for s in group], axis=0)
        mean, half = t_band(np.array([radial_power(s)[1] for s in group]), alpha)
        for radius, m, h in zip(radial_power(group[0])[0], mean, half, strict=True):
            spec_rows.append(
                {
                    **dict(zip(by, key, strict=True)),
                    "radius": radius,
                    "power": m,
                    "low": m - h,
                    "high": m + h,
                    "n_runs": len(group),
                }
            )
    return {
        "per_run": per_run,
        "mean_abs": mean_abs,
        "spectra": pd.DataFrame(spec_rows, columns=[*by, "radius", "power", "low", "high", "n_runs"]),
        "size": sorted(set(per_run["size"])),
    }
