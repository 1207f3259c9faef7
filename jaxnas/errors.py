"""User-facing errors.

Every problem caused by user input (an unknown op, a malformed architecture string, a
wrongly shaped image batch, a missing benchmark file) raises a subclass of `JaxnasError`
with a one-line message that names the problem. The CLI prints that line and exits with
status 2 instead of showing a stack trace.
"""


class JaxnasError(ValueError):
    """Base class of errors caused by bad input."""


class ArchitectureError(JaxnasError):
    """A genotype or an architecture string is malformed or out of range."""


class ShapeError(JaxnasError):
    """An input array has the wrong shape or dtype."""


class DataError(JaxnasError):
    """Image data is missing, unreadable or not prepared."""


class BenchmarkError(JaxnasError):
    """A ground-truth table is missing, unreadable or lacks a requested entry."""


class ConfigError(JaxnasError):
    """A configuration value or a registry name is invalid."""
