"""A search problem: objectives and constraints as vectorised functions of gene matrices.

Every objective and constraint maps a gene matrix ``(n, num_genes)`` to one value per row
(an accuracy predictor, a latency table for one device, FLOPs, parameter count), so a whole
population is scored with a few numpy calls. The engine minimises; ``'max'`` objectives are
negated internally and restored in reports.

:meth:`SearchProblem.check_feasible` rejects budgets that no subnet can meet *before* the search
starts, with the smallest value the space reaches and the flag to raise; once-for-all's
evolutionary finder instead loops forever resampling in that case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from hwnas.encoding import GeneLayoutBase
from hwnas.errors import ConfigError
from hwnas.families import gene_layout

GeneFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Objective:
    """One objective: ``fn(genes) -> (n,)`` values, to be maximised or minimised."""

    name: str
    fn: GeneFn
    direction: Literal["max", "min"] = "min"
    unit: str = ""

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ConfigError(f"objective {self.name!r} has direction {self.direction!r}; use 'max' or 'min'")

    @property
    def sign(self) -> float:
        """Multiplier turning natural values into minimisation values (and back)."""
        return -1.0 if self.direction == "max" else 1.0


@dataclass(frozen=True)
class Constraint:
    """``fn(genes) <= upper``: a latency budget on one device, a parameter or FLOPs cap.

    ``context`` (e.g. ``"on cpu-1thread"``) and ``option`` (the CLI flag that sets ``upper``,
    e.g. ``"--budget-ms"``) only serve to word the error when the budget is infeasible.
    """

    name: str
    fn: GeneFn
    upper: float
    unit: str = ""
    context: str = ""
    option: str | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(float(self.upper)):
            raise ConfigError(f"constraint {self.name!r} has limit {self.upper!r}; give a finite number")


def _fmt(x: float) -> str:
    return f"{x:.2f}" if 0.01 <= abs(x) < 1e4 else f"{x:.3g}"


def _fmt_up(x: float) -> str:
    """``x`` printed as in :func:`_fmt` but rounded *up*, so the suggested limit is attainable."""
    if 0.01 <= abs(x) < 1e4:
        return f"{math.ceil(x * 100 - 1e-9) / 100:.2f}"
    if x == 0:
        return "0"
    scale = 10.0 ** (math.floor(math.log10(abs(x))) - 2)
    return f"{math.ceil(x / scale - 1e-9) * scale:.3g}"


def _require_finite(kind: str, name: str, values: np.ndarray) -> np.ndarray:
    if not np.isfinite(values).all():
        raise ConfigError(f"{kind} {name!r} returned NaN or inf for "
                          f"{int((~np.isfinite(values)).sum())} candidates; fix the predictor or table")
    return values


def _unit(value: str, unit: str) -> str:
    return f"{value} {unit}" if unit else value


@dataclass
class SearchProblem:
    """Objectives and constraints over the integer genes of one gene layout (any family's; a space
    or its name is turned into its layout)."""

    layout: GeneLayoutBase
    objectives: list[Objective]
    constraints: list[Constraint] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.layout, GeneLayoutBase):
            self.layout = gene_layout(self.layout)
        self.objectives = list(self.objectives)
        self.constraints = list(self.constraints)
        if not self.objectives:
            raise ConfigError("a search problem needs at least one objective (e.g. accuracy and latency)")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ConfigError(f"objective names must be unique, got {names}")
        cnames = [c.name for c in self.constraints]
        if len(set(cnames)) != len(cnames):
            raise ConfigError(f"constraint names must be unique, got {cnames}; add the device to the name")

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    @property
    def signs(self) -> np.ndarray:
        return np.array([o.sign for o in self.objectives])

    # ----------------------------------------------------------------------------- evaluation
    def _call(self, kind: str, name: str, fn: GeneFn, genes: np.ndarray,
              done: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """``fn(genes)`` checked for shape. ``done`` holds this batch's results by function: gene
        functions are pure, and a device's latency is both an objective and the budget's constraint,
        so it runs once per batch, not twice."""
        if done is not None and id(fn) in done:
            return done[id(fn)]
        values = np.asarray(fn(genes), dtype=np.float64)
        if values.shape != (len(genes),):
            raise ConfigError(f"{kind} {name!r} returned shape {values.shape} for {len(genes)} candidates; "
                              f"its function must return one value per gene row")
        if done is not None:
            done[id(fn)] = values
        return values

    def _check_finite(self, F: np.ndarray, G: np.ndarray) -> None:
        """One check for all objective and constraint values; the error names the culprit."""
        if math.isfinite(F.sum() + G.sum()):  # a NaN or inf anywhere makes the sum non-finite
            return
        for j, o in enumerate(self.objectives):
            _require_finite("objective", o.name, F[:, j])
        for j, c in enumerate(self.constraints):
            _require_finite("constraint", c.name, G[:, j])

    def constraint_values(self, genes: np.ndarray, done: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Raw constraint values ``(n, num_constraints)`` in natural units."""
        G = np.empty((len(genes), len(self.constraints)))
        for j, c in enumerate(self.constraints):
            G[:, j] = self._call("constraint", c.name, c.fn, genes, done)
        return G

    def violation(self, G: np.ndarray) -> np.ndarray:
        """Total normalised violation: sum of ``max(0, g - upper) / |upper|`` (0 = feasible)."""
        if G.shape[1] == 0:
            return np.zeros(len(G))
        upper = np.array([c.upper for c in self.constraints], dtype=np.float64)
        excess = G - upper
        np.maximum(excess, 0.0, out=excess)
        excess /= np.where(upper != 0, np.abs(upper), 1.0)
        return excess.sum(axis=1)

    def evaluate_full(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(F, G, violation)``: minimisation objectives, raw constraint values, total violation."""
        genes = self.layout.check(genes)
        done: dict[int, np.ndarray] = {}
        F = np.empty((len(genes), self.num_objectives))
        for j, o in enumerate(self.objectives):
            F[:, j] = self._call("objective", o.name, o.fn, genes, done)
            if o.direction == "max":
                np.negative(F[:, j], out=F[:, j])
        G = self.constraint_values(genes, done)
        self._check_finite(F, G)
        return F, G, self.violation(G)

    def evaluate(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(F, violation)``: ``F`` is ``(n, m)`` to minimise, ``violation`` ``(n,) >= 0``."""
        F, _, v = self.evaluate_full(genes)
        return F, v

    def natural(self, F: np.ndarray) -> np.ndarray:
        """Minimisation values back to natural units (undo the sign of 'max' objectives)."""
        return F * self.signs

    # ----------------------------------------------------------------------------- feasibility
    def smallest_genes(self) -> np.ndarray:
        """The smallest subnet at every resolution: the minimum of every monotone cost."""
        layout = self.layout
        n = len(layout.resolution_values)
        genes = np.zeros((n, layout.num_genes), dtype=np.int8)
        genes[:, layout.resolution_gene] = np.arange(n)
        return genes

    def check_feasible(self, n_random: int = 20_000, seed: int = 0) -> None:
        """Raise :class:`ConfigError` if some constraint holds for no subnet.

        Probes the smallest subnet at every resolution, then, only for constraints none of those
        meets, ``n_random`` random subnets. For monotone costs (latency, FLOPs, params) the
        smallest subnet is the true minimum, so the message gives the exact lowest attainable
        value; the random batch catches costs that are not monotone.
        """
        smallest = self.smallest_genes()
        random = None
        for c in self.constraints:
            values = _require_finite("constraint", c.name, self._call("constraint", c.name, c.fn, smallest))
            if (values <= c.upper).any():
                continue
            if random is None:
                random = self.layout.canonicalize(self.layout.random(n_random, seed))
            more = _require_finite("constraint", c.name, self._call("constraint", c.name, c.fn, random))
            values = np.concatenate([values, more])
            if (values <= c.upper).any():
                continue
            best = int(np.argmin(values))
            if best < len(smallest):
                where = f"smallest subnet at resolution {int(self.layout.resolution_values[best])}"
            else:
                where = f"best of {n_random:,} random subnets"
            ctx = f" {c.context}" if c.context else ""
            there = " there" if c.context else ""
            fix = c.option or f"the {c.name} limit"
            raise ConfigError(
                f"{c.name} budget {_unit(_fmt(c.upper), c.unit)}{ctx} is infeasible: the smallest {c.name} "
                f"this space reaches{there} is {_unit(_fmt(values[best]), c.unit)} ({where}). "
                f"Raise {fix} to at least {_fmt_up(values[best])}.")
