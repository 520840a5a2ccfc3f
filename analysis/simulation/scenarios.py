"""The scenarios of the validation study: per-run accuracies with known truth, outside the textbook case too.

Every scenario has the design of a real study (3 variants x 5 data fractions x ``seeds`` seeds, one shared
test set) and draws the test accuracy of every run directly as an array (studies x variants x seeds x
fractions), so thousands of studies take seconds. A run's true accuracy is

    p = curve(fraction) + effect[v] + interaction[v] * log2(fraction) + u_seed + w_seed,variant + e_run

with a seed effect ``u`` shared by every variant and fraction of a seed, an optional seed x variant
effect ``w`` (a variant effect that varies by seed), and run noise ``e`` (normal, or Student t with 3
degrees of freedom); the observed accuracy is ``Binomial(n_test, p) / n_test``. Two departures replace
the observed accuracy by the base rate (the share of the majority class, :data:`BASE_RATE`): runs that
fail to learn (each run independently with ``failure_rate``), and fractions at the floor (every run of
the ``floor_fractions`` smallest fractions). The truth of every contrast and level is its exact expected
value under this model (:meth:`Scenario.truth`), so coverage is measured against known answers.

:data:`SCENARIOS` holds the scenarios that ``python -m analysis.validate`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.simulation.study import N_FULL, expected_error

VARIANTS = ("avgpool", "maxpool", "strided")  # the first is the reference
FRACTIONS = np.array([0.05, 0.1, 0.25, 0.5, 1.0])
BASE_RATE = 0.6  # accuracy of a run that predicts the majority class (the simulated prevalence)
NOISES = ("normal", "t3")
CURVES = ("power", "linear")


@dataclass(frozen=True)
class Scenario:
    """One generative model of per-run accuracy (see the module docstring); validated when made.

    Parameters
    ----------
    name, description : str
        Short key and one line for the validation table.
    effects, interaction : tuple of float
        Per variant (reference first, 0): accuracy shift at fraction 1, and extra shift per doubling.
    seed_sd, noise_sd, seed_variant_sd : float
        SD of the seed effect, scale of the run noise (its SD for normal noise; t3 noise has SD
        ``sqrt(3) * noise_sd``) and SD of the seed x variant effect, on the accuracy scale.
    noise : str
        ``"normal"`` or ``"t3"`` (heavy tails).
    failure_rate : float
        Probability that a run fails to learn and sits at the base rate.
    floor_fractions : int
        How many of the smallest fractions have every run at the base rate.
    ceiling : float or None
        A flat expected accuracy at every fraction (e.g. 0.997) instead of the learning curve.
    n_test : int
        Test examples of the shared test set (binomial test-set noise).
    curve : str
        ``"power"``: the learning curve of :mod:`analysis.simulation.study` (curved in log2 fraction);
        ``"linear"``: its end points joined linearly in log2 fraction (a mixed model's fixed part is then
        exactly right).
    """

    name: str
    description: str
    effects: tuple[float, ...] = (0.0, -0.02, 0.0)
    interaction: tuple[float, ...] = (0.0, 0.0, 0.01)
    seed_sd: float = 0.015
    noise_sd: float = 0.01
    seed_variant_sd: float = 0.0
    noise: str = "normal"
    failure_rate: float = 0.0
    floor_fractions: int = 0
    ceiling: float | None = None
    n_test: int = 200
    curve: str = "power"

    def __post_init__(self) -> None:
        if self.noise not in NOISES:
            raise ValueError(f"noise {self.noise!r} is unknown; choose from {', '.join(NOISES)}")
        if self.curve not in CURVES:
            raise ValueError(f"curve {self.curve!r} is unknown; choose from {', '.join(CURVES)}")
        if len(self.effects) != len(VARIANTS) or len(self.interaction) != len(VARIANTS):
            raise ValueError(f"effects and interaction need one value per variant {VARIANTS}")
        if self.effects[0] != 0 or self.interaction[0] != 0:
            raise ValueError("the reference (first variant) must have effect and interaction 0")
        if not 0 <= self.failure_rate < 1:
            raise ValueError(f"failure_rate must lie in [0, 1), got {self.failure_rate}")
        if not 0 <= self.floor_fractions < FRACTIONS.size:
            raise ValueError(f"floor_fractions must lie in [0, {FRACTIONS.size}), got {self.floor_fractions}")
        if self.n_test < 10:
            raise ValueError(f"n_test must be at least 10, got {self.n_test}")

    def with_(self, **changes) -> Scenario:
        """A copy with some fields changed (e.g. ``curve="linear"``)."""
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return Scenario(**{**fields, **changes})

    @property
    def base_rate(self) -> float:
        """The observed accuracy of a run at the base rate (majority class of the finite test set)."""
        return round(BASE_RATE * self.n_test) / self.n_test

    def expected_accuracy(self, *, null: bool = False) -> np.ndarray:
        """True accuracy of a run before seed, seed x variant and run effects: (variants, fractions)."""
        log2f = np.log2(FRACTIONS)
        if self.ceiling is not None:
            curve = np.full(FRACTIONS.size, self.ceiling)
        else:
            curve = 1 - expected_error(FRACTIONS * N_FULL)
            if self.curve == "linear":
                curve = curve[-1] + (curve[0] - curve[-1]) * log2f / log2f[0]
        planted = np.zeros((len(VARIANTS), 1)) if null else self._planted()
        return curve[None, :] + planted

    def _planted(self) -> np.ndarray:
        log2f = np.log2(FRACTIONS)
        return np.asarray(self.effects)[:, None] + np.asarray(self.interaction)[:, None] * log2f[None, :]

    def truth(self, *, null: bool = False) -> np.ndarray:
        """Expected observed accuracy of every variant x fraction cell: (variants, fractions).

        A failed run or a floor fraction gives the base rate; the binomial is unbiased, so the expected
        accuracy is ``(1 - failure_rate) * p + failure_rate * base_rate`` (``p`` averaged over the zero-
        mean seed and run effects; valid while ``p`` stays inside [0, 1], see :meth:`clip_margin`).
        """
        q = self.failure_rate
        out = (1 - q) * self.expected_accuracy(null=null) + q * self.base_rate
        out[:, : self.floor_fractions] = self.base_rate
        return out

    def clip_margin(self) -> float:
        """How many SDs of the seed, seed x variant and run effects separate ``p`` from 0 and 1."""
        sd = np.sqrt(
            self.seed_sd**2 + self.seed_variant_sd**2 + self.noise_sd**2 * (3 if self.noise == "t3" else 1)
        )
        p = self.expected_accuracy()
        return float(min(p.min(), 1 - p.max()) / sd)

    def simulate(
        self, n_studies: int, n_seeds: int, rng: np.random.Generator, *, null: bool = False
    ) -> np.ndarray:
        """Observed test accuracy of every run: (studies, variants, seeds, fractions)."""
        n_v, n_f = len(VARIANTS), FRACTIONS.size
        shape = (n_studies, n_v, n_seeds, n_f)
        p = self.expected_accuracy(null=null)[None, :, None, :]
        p = p + rng.normal(0, self.seed_sd, (n_studies, 1, n_seeds, 1))
        if self.seed_variant_sd > 0:
            p = p + rng.normal(0, self.seed_variant_sd, (n_studies, n_v, n_seeds, 1))
        if self.noise == "t3":
            p = p + self.noise_sd * rng.standard_t(3, shape)
        else:
            p = p + rng.normal(0, self.noise_sd, shape)
        acc = rng.binomial(self.n_test, np.clip(p, 0, 1)) / self.n_test
        if self.failure_rate > 0:
            acc = np.where(rng.random(shape) < self.failure_rate, self.base_rate, acc)
        acc[..., : self.floor_fractions] = self.base_rate
        return acc


def runs_from_accuracy(acc: np.ndarray, n_test: int) -> pd.DataFrame:
    """A minimal ``runs`` table of one simulated study's accuracies ``(variants, seeds, fractions)``.

    Every run is ok; its confusion counts hold the correct test examples as ``tp`` and the wrong ones as
    ``fp`` (``tn = fn = 0``), so only accuracy's counts (``tp + tn`` of all) are meaningful.
    """
    n_v, n_s, n_f = acc.shape
    v, s, f = (a.ravel() for a in np.meshgrid(np.arange(n_v), np.arange(n_s), np.arange(n_f), indexing="ij"))
    correct = np.rint(acc.ravel() * n_test)
    return pd.DataFrame(
        {
            "variant": np.array(VARIANTS)[v],
            "seed": s,
            "data_fraction": FRACTIONS[f],
            "status": "ok",
            "accuracy": acc.ravel(),
            "tp": correct,
            "tn": 0.0,
            "fp": n_test - correct,
            "fn": 0.0,
        }
    )


def contrast_truth(truth: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """True paired differences to the reference per fraction and pooled, in :func:`contrasts` order."""
    values, labels = [], []
    for v in range(1, len(VARIANTS)):
        d = truth[v] - truth[0]
        values += [*d, d.mean()]
        labels += [f"{VARIANTS[v]} @ {f:g}" for f in FRACTIONS] + [f"{VARIANTS[v]} pooled"]
    return np.array(values), labels


def contrasts(acc: np.ndarray) -> np.ndarray:
    """Per-seed differences to the reference: (studies, contrasts, seeds).

    Contrasts are, per non-reference variant, one per fraction and then the mean over fractions (the
    report's pooled row): 2 variants x (5 fractions + pooled) = 12, the report's Holm family of a metric.
    """
    out = []
    for v in range(1, acc.shape[1]):
        d = acc[:, v] - acc[:, 0]  # (N, S, F)
        out += [d[..., k] for k in range(d.shape[-1])] + [d.mean(-1)]
    return np.stack(out, axis=1)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("normal", "normal run noise, seed intercept (the textbook case)"),
    Scenario("heavy tails", "Student t3 run noise (SD 1.7 pp)", noise="t3"),
    Scenario("failed runs", "10 % of runs fail to learn and sit at the base rate", failure_rate=0.1),
    Scenario(
        "ceiling",
        "accuracy 99.7 % at every fraction, 300 test examples (about 1 error per run)",
        effects=(0.0, -0.004, 0.0),
        interaction=(0.0, 0.0, 0.0005),
        seed_sd=0.0005,
        noise_sd=0.0003,
        ceiling=0.997,
        n_test=300,
    ),
    Scenario("seed x variant", "a variant effect that varies by seed (SD 0.7 pp)", seed_variant_sd=0.007),
    Scenario("floor", "the two smallest fractions have every run at the base rate", floor_fractions=2),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


def scenario(name: str) -> Scenario:
    """The scenario called ``name``.

    Raises
    ------
    ValueError
        If no scenario has that name (the message lists them).
    """
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIO_NAMES)}")
