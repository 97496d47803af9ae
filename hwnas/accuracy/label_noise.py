"""How noisy accuracy labels are, and the best Kendall tau any predictor can reach against them.

Why not "tau between two repeat runs": a held-out metric compares a predictor's output with **one**
noisy label per subnet. A perfect predictor outputs the true accuracy ``t``; its score is
``tau(t, t + e)``. Two repeat runs give ``tau(t + e1, t + e2)``, which carries the noise twice and
so sits below the real ceiling (Pearson 0.93 between runs -> tau 0.77 between runs, but about 0.83
for a perfect predictor against one run, under the Gaussian model below).

The model. A label is ``y = t + c + v``: ``t`` the subnet's accuracy with infinitely many
calibration and validation images, ``c`` the BN-recalibration noise (which calibration images),
``v`` the validation-sampling noise (which validation images), independent and zero mean.

* ``var(c)``: from two runs on the same validation images with different calibration images,
  ``var(a - b) / 2`` (``accuracy`` vs ``accuracy_2`` of ``hwnas collect --repeat-calibration``).
* ``var(v)``: from the two halves of the validation images under one calibration,
  ``var(h1 - h2) / 4`` (each half has twice the full set's sampling variance, and the full-set
  label is their mean). Differences across subnets are centred, so a half that is harder for
  every subnet does not count: it shifts all labels and leaves the ranking alone.
* The reliability ``R = var(t) / var(y) = 1 - (var(c) + var(v)) / var(y)``.

Two estimates of the ceiling ``tau(t, y)``:

* ``analytic``: for jointly Gaussian ``t`` and ``y``, ``tau = 2/pi * arcsin(sqrt(R))``.
* ``simulated``: draw ``t`` as the observed labels shrunk towards their mean to variance
  ``R * var(y)`` (keeps the labels' skew), add Gaussian noise of the measured variance, round to
  the labels' step (1 / validation images, since labels tie) and average ``tau`` over draws.

Assumptions (written into every result): noise independent of ``t`` and across subnets with one
variance for all subnets (homoscedastic), the two halves equal in size; the ceiling refers to
labels measured with this protocol (the full validation subset, one calibration set).

Where the assumption breaks: subnets share weights and are all scored on the same validation
images, so their sampling errors are partly alike for alike architectures, and a predictor
scored against labels from those same images can learn that part. On the shipped supernet the
held-out tau of the refit predictor passed this ceiling (experiments/results/noise_ceiling.json
vs predictors/fmnist-mbv3/accuracy_xgb.meta.json). ``tau_calibration_only`` is therefore also
given: the ceiling if the validation-sampling error were all learnable (calibration noise only),
the upper end of what a held-out tau on the same images can reach.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.accuracy.collect import DATASET_FILE, HALF_FIELDS, META_FILE, REPEAT_FIELD, read_records
from hwnas.errors import DataError

ASSUMPTIONS = ("label = true accuracy + calibration noise + validation-sampling noise, independent, zero mean; "
               "one noise variance for all subnets; validation halves of equal size; the ceiling is the "
               "Kendall tau of a perfect predictor (true accuracy) against one label of this protocol")


@dataclass(frozen=True)
class NoiseCeiling:
    """Measured label noise and the ceiling it puts on a predictor's held-out Kendall tau."""

    n: int
    label_std: float
    noise_var_calibration: float
    noise_var_validation: float | None     # None: no half-split fields, sampling noise not measured
    reliability: float                     # var(true) / var(label)
    tau_analytic: float
    tau_simulated: float
    tau_simulated_std: float
    spearman_simulated: float
    tau_between_repeats: float             # the old, too low "ceiling", for comparison
    tau_analytic_interval: tuple[float, float]  # 5th/95th percentile over a bootstrap of the subnets
    quantum: float | None                  # label step the simulation rounds to
    method: str
    assumptions: str = ASSUMPTIONS
    tau_calibration_only: float | None = None  # simulated, calibration noise only (validation error learnable)

    @property
    def noise_std(self) -> float:
        return float(np.sqrt(self.noise_var_calibration + (self.noise_var_validation or 0.0)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "noise_std": self.noise_std}


def gaussian_tau(reliability: float) -> float:
    """Kendall tau between ``t`` and ``t + e`` for jointly Gaussian variables with ``R = var(t)/var(t+e)``."""
    return float(2.0 / np.pi * np.arcsin(np.sqrt(np.clip(reliability, 0.0, 1.0))))


def calibration_noise_var(a: np.ndarray, b: np.ndarray) -> float:
    """Variance of one label's calibration noise from two runs that differ only in calibration images."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return float(np.var(d, ddof=1) / 2.0)


def validation_noise_var(half1: np.ndarray, half2: np.ndarray) -> float:
    """Variance of a full-set label's validation-sampling noise from its two equal halves."""
    d = np.asarray(half1, float) - np.asarray(half2, float)
    return float(np.var(d, ddof=1) / 4.0)


def _analytic_from(a: np.ndarray, b: np.ndarray, halves: tuple[np.ndarray, np.ndarray] | None) -> float:
    noise = calibration_noise_var(a, b) + (validation_noise_var(*halves) if halves is not None else 0.0)
    return gaussian_tau(1.0 - noise / float(np.var(a, ddof=1)))


def bootstrap_interval(a: np.ndarray, b: np.ndarray, halves: tuple[np.ndarray, np.ndarray] | None, *,
                       resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """5th and 95th percentile of the analytic ceiling over resampled subnets: how well a repeat set
    of this size pins the noise down (a few dozen subnets leave a wide interval)."""
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        i = rng.integers(0, len(a), len(a))
        taus.append(_analytic_from(a[i], b[i], None if halves is None else (halves[0][i], halves[1][i])))
    lo, hi = np.percentile(taus, [5, 95])
    return float(lo), float(hi)


def simulate_ceiling(labels: np.ndarray, noise_var: float, *, draws: int = 200, quantum: float | None = None,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean and std over ``draws`` of Kendall tau, and mean Spearman, of a perfect predictor against one
    simulated noisy label (see the module doc). Returns ``(tau, tau_std, spearman)``."""
    from scipy.stats import kendalltau, spearmanr

    y = np.asarray(labels, float)
    var_y = float(np.var(y, ddof=1))
    rel = max(0.0, 1.0 - noise_var / var_y)
    true = y.mean() + (y - y.mean()) * np.sqrt(rel)
    rng = np.random.default_rng(seed)
    taus, rhos = [], []
    for _ in range(draws):
        noisy = true + rng.normal(0.0, np.sqrt(noise_var), len(true))
        if quantum:
            noisy = np.round(noisy / quantum) * quantum
        taus.append(kendalltau(true, noisy).statistic)
        rhos.append(spearmanr(true, noisy).statistic)
    return float(np.mean(taus)), float(np.std(taus)), float(np.mean(rhos))


def estimate_ceiling(a: np.ndarray, b: np.ndarray, halves: tuple[np.ndarray, np.ndarray] | None = None, *,
                     quantum: float | None = None, draws: int = 200, seed: int = 0) -> NoiseCeiling:
    """Noise ceiling from repeat labels.

    ``a``: the labels a predictor is scored against; ``b``: the same subnets with other calibration
    images (same validation images); ``halves``: ``a`` split into its two validation halves (same
    calibration as ``a``), or ``None`` when they were not recorded (validation noise then unknown and
    left out, so the ceiling is an upper bound).
    """
    from scipy.stats import kendalltau

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 10:
        raise DataError(f"need two equal-length label vectors of at least 10 subnets, got {a.shape} and {b.shape}; "
                        "collect more with `hwnas collect --repeat-calibration`")
    var_c = calibration_noise_var(a, b)
    var_v = validation_noise_var(*halves) if halves is not None else None
    noise = var_c + (var_v or 0.0)
    var_y = float(np.var(a, ddof=1))
    if noise >= var_y:
        raise DataError(f"the measured label noise (variance {noise:.3g}) is as large as the labels' spread "
                        f"({var_y:.3g}): the labels rank nothing; evaluate on more validation images")
    rel = 1.0 - noise / var_y
    tau_sim, tau_std, rho_sim = simulate_ceiling(a, noise, draws=draws, quantum=quantum, seed=seed)
    tau_calib = (simulate_ceiling(a, var_c, draws=draws, quantum=quantum, seed=seed)[0] if var_v is not None
                 else tau_sim)
    method = ("noise variances from repeats (calibration: var(a-b)/2"
              + (", validation sampling: var(half1-half2)/4" if halves is not None else
                 "; validation-sampling noise NOT measured, so this ceiling is an upper bound")
              + "); ceiling = Kendall tau of the true accuracy against one label: analytic 2/pi*arcsin(sqrt(R)) "
              "for Gaussian variables, and simulated (labels shrunk to the true variance + Gaussian noise"
              + (f", rounded to {quantum:g}" if quantum else "") + f", {draws} draws)")
    return NoiseCeiling(n=len(a), label_std=float(np.sqrt(var_y)), noise_var_calibration=var_c,
                        noise_var_validation=var_v, reliability=rel, tau_analytic=gaussian_tau(rel),
                        tau_simulated=tau_sim, tau_simulated_std=tau_std, spearman_simulated=rho_sim,
                        tau_between_repeats=float(kendalltau(a, b).statistic),
                        tau_analytic_interval=bootstrap_interval(a, b, halves, seed=seed), quantum=quantum,
                        method=method, tau_calibration_only=tau_calib)



def label_step(meta: dict[str, Any]) -> float | None:
    """The step between possible accuracy labels of a data set's protocol: 1 / validation images
    (``val_images``, or the whole validation split ``val_size`` when ``val_images`` is 0)."""
    count = meta.get("val_images") or meta.get("val_size")
    return 1.0 / count if count else None


def ceiling_from_records(records: list[dict[str, Any]], *, quantum: float | None = None,
                         draws: int = 200, seed: int = 0) -> NoiseCeiling | None:
    """:func:`estimate_ceiling` on the records of a repeat data set; ``None`` without repeats.

    Uses the half-split fields only when every repeated record has them. ``quantum`` is the label
    step the simulation rounds to (:func:`label_step`).
    """
    rows = [r for r in records if r.get(REPEAT_FIELD) is not None]
    if len(rows) < 10:
        return None
    a = np.array([r["accuracy"] for r in rows])
    b = np.array([r[REPEAT_FIELD] for r in rows])
    halves = None
    if all(all(r.get(f) is not None for f in HALF_FIELDS) for r in rows):
        halves = tuple(np.array([r[f] for r in rows]) for f in HALF_FIELDS)
    return estimate_ceiling(a, b, halves, quantum=quantum, draws=draws, seed=seed)


def read_ceiling_file(path: str | Path) -> NoiseCeiling:
    """A ceiling from experiments/noise_ceiling.py's result file, or computed from a repeat data set."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"noise-ceiling source {path} does not exist; pass a repeat data set (`hwnas collect "
                        "--repeat-calibration`) or experiments/results/noise_ceiling.json")
    if path.suffix == ".jsonl":
        meta_file = path.with_name(META_FILE)
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        ceiling = ceiling_from_records(read_records(path), quantum=label_step(meta))
        if ceiling is None:
            raise DataError(f"{path} has fewer than 10 records with accuracy_2; it is not a repeat data set")
        return ceiling
    saved = json.loads(path.read_text())
    names = {f.name for f in fields(NoiseCeiling)}
    missing = names - set(saved) - {"assumptions", "tau_calibration_only"}
    if missing:
        raise DataError(f"{path} is not a noise-ceiling result (missing {sorted(missing)}); regenerate it with "
                        "experiments/noise_ceiling.py")
    values = {k: v for k, v in saved.items() if k in names}
    values["tau_analytic_interval"] = tuple(values["tau_analytic_interval"])
    return NoiseCeiling(**values)


def find_ceiling(data_path: Path, records: list[dict[str, Any]], meta: dict[str, Any],
                 explicit: Path | None = None) -> tuple[NoiseCeiling | None, str]:
    """The ceiling for predictors fitted on ``data_path``, and where it came from.

    ``explicit`` (a repeat set or a result file) wins; else the data set's own repeats; else a
    sibling ``<folder>-repeat/dataset.jsonl`` measured on the same supernet. ``(None, why)`` if none.
    """
    if explicit is not None:
        return read_ceiling_file(explicit), str(explicit)
    if data_path.is_dir():
        data_path = data_path / DATASET_FILE
    own = ceiling_from_records(records, quantum=label_step(meta))
    if own is not None:
        return own, f"{data_path} (accuracy_2)"
    sibling = data_path.parent.with_name(data_path.parent.name + "-repeat") / data_path.name
    if sibling.is_file():
        side = sibling.with_name(META_FILE)
        sha = json.loads(side.read_text()).get("supernet_sha256") if side.is_file() else None
        if sha != meta.get("supernet_sha256"):
            return None, f"{sibling} was measured on another supernet, so its ceiling does not apply"
        return read_ceiling_file(sibling), str(sibling)
    return None, "no repeat data set (collect one with `hwnas collect --repeat-calibration`)"
