"""Validation of a resolved experiment config: every field's name, type and range.

`validate(config)` runs before an experiment touches the disk or compiles anything, so a
field that does not exist, a value of the wrong type or a size or count of zero or below
ends with one `ConfigError` naming the field, instead of a traceback deep in JAX or a
silent wrong answer (`num_inits=0` used to write `"score": null` for every cell).

Names and types come from `configs.default_config()`: a field there is a field here,
and its default's type is the type it must keep (an int field accepts no float, a tuple
field no bare string). Empty sub-configs there (`space.kwargs`,
`benchmark.reference_of`) are free-form keyword arguments and are not checked by name.
Ranges are the table `RANGES` below; choice fields are checked where they are used
(`mode`, `space.name`, proxy specs, `data.normalization`), whose errors list the options.
"""

import math
from collections.abc import Callable

import ml_collections

from jaxnas import errors

AT_LEAST_ONE = (1, "an integer >= 1")
AT_LEAST_ZERO = (0, "an integer >= 0")

# Field -> (smallest allowed value, how the message words it).
RANGES: dict[str, tuple[int, str]] = {
    "num_inits": AT_LEAST_ONE,
    "chunk_size": AT_LEAST_ZERO,  # 0: chosen per backend (`jaxnas.dispatch`)
    "init_chunk_size": AT_LEAST_ZERO,  # 0: chosen per backend (`jaxnas.dispatch`)
    "archs_per_call": AT_LEAST_ONE,
    "concurrent_calls": AT_LEAST_ZERO,  # 0: chosen per backend (`jaxnas.dispatch`)
    "data.max_examples": AT_LEAST_ONE,
    "data.crop_padding": AT_LEAST_ZERO,
    "data.batch_size": AT_LEAST_ONE,
    "data.image_size": AT_LEAST_ONE,
    "data.num_classes": AT_LEAST_ONE,
    "data.crops": AT_LEAST_ZERO,
    "data.crop_size": AT_LEAST_ONE,
    "population.size": AT_LEAST_ONE,
    "search.population_size": AT_LEAST_ONE,
    "search.num_generations": AT_LEAST_ONE,
    "search.num_runs": AT_LEAST_ONE,
    "report.num_bootstrap": AT_LEAST_ONE,
}

# Field -> allowed values, for choices that are not checked (with the options listed)
# where they are used.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": ("synthetic", "npz", "tfds"),
    "population.source": ("sample", "all", "benchmark", "list"),
}


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (tuple, list)):
        return "a tuple of strings"
    return type(value).__name__


def _has_type(value, default) -> bool:
    """Whether `value` may stand where the default `default` stands."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def _walk(
    config: ml_collections.ConfigDict,
    defaults: ml_collections.ConfigDict,
    prefix: str,
    check: Callable[[str, object, object], None],
) -> None:
    for name in config.keys():
        field = f"{prefix}{name}"
        if name not in defaults:
            known = ", ".join(sorted(defaults.keys()))
            raise errors.ConfigError(
                f"config field 'config.{field}' does not exist; "
                f"{'config.' + prefix[:-1] if prefix else 'config'} has: {known}"
            )
        value, default = config[name], defaults[name]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, (ml_collections.ConfigDict, dict)):
                raise errors.ConfigError(f"config.{field} must be a group of fields, got {value!r}")
            if len(default):  # an empty default group is free-form keyword arguments
                _walk(ml_collections.ConfigDict(value), default, f"{field}.", check)
            continue
        check(field, value, default)


def validate(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` unless every field of `config` exists, has its type and range.

    Args:
      config: a resolved experiment config (config file plus command-line overrides).
      defaults: the config that lists every field (`configs.default_config()`).

    Raises:
      errors.ConfigError: one line naming the first bad field, its value and what it
        must be.
    """

    def check(field, value, default):
        if not _has_type(value, default):
            raise errors.ConfigError(f"config.{field} must be {_type_name(default)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise errors.ConfigError(f"config.{field} must be finite, got {value!r}")
        if field in RANGES:
            low, wording = RANGES[field]
            if value < low:
                raise errors.ConfigError(f"config.{field} must be {wording}, got {value!r}")
        if field in CHOICES and value not in CHOICES[field]:
            raise errors.ConfigError(
                f"config.{field} must be one of {list(CHOICES[field])}, got {value!r}"
            )

    _walk(config, defaults, "", check)
    # A combination of published table columns scores no proxy of its own.
    columns_only = "combine" in config and config.combine.method and config.combine.columns
    if "proxies" in config and not config.proxies and not columns_only:
        raise errors.ConfigError(
            "config.proxies is empty; name at least one proxy (or combine.columns)"
        )
