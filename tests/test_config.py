"""Architecture presets, knob overrides and their validation."""

from __future__ import annotations

import pytest

from simulator import KNOBS, ConfigError, load_arch, preset_names
from simulator.config import parse_knob_value


def test_presets_load_with_their_designs():
    assert {"dadiannao", "stripes", "dynamic_stripes", "pragmatic"} <= set(preset_names())
    prag = load_arch("pragmatic")
    assert (prag.first_stage_bits, prag.run_ahead, prag.encoding) == (2, 1, "booth")
    assert load_arch("dadiannao").columns == 1


def test_overrides_and_hash():
    a = load_arch("pragmatic", columns=4, encoding="csd")
    assert a.columns == 4 and a.encoding == "csd"
    assert a.config_hash() != load_arch("pragmatic").config_hash()
    assert set(KNOBS) >= {"tiles", "rows", "columns", "lanes", "pe_width", "serial", "encoding", "first_stage_bits",
                          "group_size", "minor_bit", "run_ahead", "first_layer_space_to_depth", "clock_mhz"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"tiles": -3}, "tiles (-3) must be in 1..4096"),
    ({"columns": 12, "group_size": 5}, "columns (12) must be a multiple of group_size (5)"),
    ({"encoding": "fixed"}, "encoding (fixed) is not supported by pragmatic"),
    ({"serial": "sideways"}, "serial ('sideways') must be one of"),
    ({"minor_bit": "yes"}, "minor_bit ('yes') must be true or false"),
    ({"warp": 9}, "unknown knob(s) warp"),
])
def test_bad_knobs(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_arch("pragmatic", **overrides)
    assert message in str(err.value)


def test_yaml_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("design: stripes\nserial: activation\nencoding: fixed\ntiles: zero\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: tiles \('zero'\) must be an integer"):
        load_arch(bad)
    bad.write_text("design: stripes\ncolour: blue\n")
    with pytest.raises(ConfigError, match="unknown field"):
        load_arch(bad)
    bad.write_text("design: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_arch(bad)
    with pytest.raises(ConfigError, match="unknown architecture 'nope'"):
        load_arch("nope")


def test_parse_knob_value():
    assert parse_knob_value("columns", "4") == 4
    assert parse_knob_value("minor_bit", "true") is True
    assert parse_knob_value("encoding", "csd") == "csd"
    with pytest.raises(ConfigError):
        parse_knob_value("bogus", "1")
