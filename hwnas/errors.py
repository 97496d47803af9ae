"""Exception types users see. Each message names the problem and the fix.

The CLI catches :class:`HwnasError` and prints its message (exit code 2) instead of a traceback.
"""


class HwnasError(Exception):
    """Base class of every error hwnas raises on purpose (bad input, missing file, ...)."""

    exit_code = 2


class SpaceError(HwnasError, ValueError):
    """A search space is malformed, unknown, or does not match an artifact."""


class ArchitectureError(HwnasError, ValueError):
    """An architecture lies outside its search space or is malformed."""


class ConfigError(HwnasError, ValueError):
    """A config or device profile is malformed."""


class DataError(HwnasError, FileNotFoundError):
    """A data set is missing or malformed."""


class MeasurementError(HwnasError, RuntimeError):
    """Latency could not be measured (runtime missing, agent unreachable, ...)."""
