"""hwnas: hardware-aware neural architecture search.

Data flow: search space (:mod:`hwnas.space`, :mod:`hwnas.arch`) -> supernet -> latency tables
(:mod:`hwnas.latency`) and accuracy predictors (:mod:`hwnas.accuracy`) -> search
(:mod:`hwnas.search`) -> export (:mod:`hwnas.export`).
"""

__version__ = "0.1.0"
