"""Config validation: every field's name, type and range, on the resolved config."""

import glob
import os

import ml_collections
import pytest

from jaxnas import config_checks, configs, errors, experiment

from conftest import ROOT, load_config


def _walk_leaves(config, prefix=""):
    """(dotted name, default) of every checked field of `config`."""
    for name in config.keys():
        value = config[name]
        if isinstance(value, ml_collections.ConfigDict):
            yield from _walk_leaves(value, f"{prefix}{name}.") if len(value) else ()
        else:
            yield f"{prefix}{name}", value


def _set(config, field, value):
    *groups, name = field.split(".")
    for group in groups:
        config = config[group]
    with config.ignore_type():
        config[name] = value


def _validate(config):
    config_checks.validate(config, configs.default_config())


def test_the_defaults_and_every_config_file_pass():
    _validate(configs.default_config())
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
    assert paths
    for path in paths:
        _validate(load_config(path))


@pytest.mark.parametrize("field", sorted(config_checks.RANGES))
def test_a_value_below_the_range_is_an_error_naming_the_field(field):
    config = configs.default_config()
    low, wording = config_checks.RANGES[field]
    _set(config, field, low - 1)
    message = f"config.{field} must be {wording}, got {low - 1}"
    with pytest.raises(errors.ConfigError, match=message):
        _validate(config)
    _set(config, field, low)
    _validate(config)


@pytest.mark.parametrize("field", [f for f, _ in _walk_leaves(configs.default_config())])
def test_every_field_with_a_value_of_the_wrong_type_is_an_error(field):
    default = dict(_walk_leaves(configs.default_config()))[field]
    # A value of another kind than the default's: a string for numbers, booleans and
    # tuples; a number for strings.
    wrong = 1.5 if isinstance(default, str) else "1"
    config = configs.default_config()
    _set(config, field, wrong)
    with pytest.raises(errors.ConfigError, match=f"config.{field} must be") as info:
        _validate(config)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("num_inits", True, "must be an integer"),  # a bool is not a count
        ("fuse_proxies", 1, "must be a boolean"),
        ("proxies", ("naswot", 3), "must be a tuple of strings"),
        ("proxies", (), "config.proxies is empty"),
        ("data.source", "hdf5", r"must be one of \['synthetic', 'npz', 'tfds'\]"),
        ("population.source", "grid", "must be one of"),
    ],
)
def test_other_bad_values(field, value, message):
    config = configs.default_config()
    _set(config, field, value)
    with pytest.raises(errors.ConfigError, match=message):
        _validate(config)


def test_a_field_that_does_not_exist_is_an_error_but_free_form_kwargs_are_not():
    config = configs.default_config()
    config.space.kwargs = {"channels": 4, "anything": "goes"}  # the space checks these
    _validate(config)
    config.data.batchsize = 8
    with pytest.raises(errors.ConfigError, match="'config.data.batchsize' does not exist"):
        _validate(config)


def test_experiment_run_validates_before_writing(tmp_path):
    config = configs.default_config()
    config.num_inits = 0
    with pytest.raises(errors.ConfigError, match="config.num_inits must be an integer >= 1"):
        experiment.run(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
