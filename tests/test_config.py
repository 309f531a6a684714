"""Architecture presets, the knobs each design declares, overrides and their validation."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from simulator import KNOBS, ArchConfig, ConfigError, Design, design_knobs, load_arch, preset_names
from simulator.config import arch_from_dict, parse_knob_value
from simulator.designs import MODELS
from simulator.knobs import MACHINE


def test_presets_load_with_their_designs():
    assert {"dadiannao", "stripes", "dynamic_stripes", "pragmatic"} <= set(preset_names())
    prag = load_arch("pragmatic")
    assert (prag.first_stage_bits, prag.run_ahead, prag.encoding) == (2, 1, "booth")
    assert load_arch("dadiannao").columns == 1


@pytest.mark.parametrize("design", list(Design))
def test_a_yaml_of_the_design_alone_is_its_preset(design, tmp_path):
    """Designs own their defaults: ``design: X`` alone is a valid file and equals preset X."""
    path = tmp_path / f"{design.value}.yaml"
    path.write_text(f"design: {design.value}\n")
    assert load_arch(path) == load_arch(design.value)


def test_every_design_declares_serial_and_encoding_or_derives_them():
    for design, model in MODELS.items():
        arch = load_arch(design.value)
        assert arch.serial in ("none", "activation", "weight", "both")
        assert "encoding" in arch.knobs
        names = [k.name for k in model.knobs]
        assert len(names) == len(set(names)), design
        assert not set(names) & {k.name for k in MACHINE}, design


def test_overrides_and_hash():
    a = load_arch("pragmatic", columns=4, encoding="csd")
    assert a.columns == 4 and a.encoding == "csd"
    assert a.config_hash() != load_arch("pragmatic").config_hash()
    assert load_arch("pragmatic", columns=16).config_hash() == load_arch("pragmatic").config_hash()  # same values
    assert a.replace(name="other").config_hash() == a.config_hash()  # the name is not hashed
    assert set(KNOBS) >= {"tiles", "rows", "columns", "lanes", "pe_width", "serial", "encoding", "first_stage_bits",
                          "group_size", "minor_bit", "run_ahead", "first_layer_space_to_depth", "clock_mhz",
                          "kept_columns", "lookahead", "fusion_rows"}


def test_a_knob_of_another_design_is_refused_and_not_hashed():
    with pytest.raises(ConfigError, match=r"stripes has no knob 'kept_columns' \(a knob of bitx\)"):
        load_arch("stripes", kept_columns=4)
    with pytest.raises(ConfigError, match="stripes has no knob 'lookahead'"):
        load_arch("stripes", lookahead=7)
    assert set(load_arch("stripes").to_dict()) == {"name", "design", *design_knobs("stripes")}
    with pytest.raises(AttributeError, match="stripes has no knob 'kept_columns'"):
        load_arch("stripes").kept_columns  # noqa: B018


def test_engine_knobs_read_neutral_where_a_design_has_none():
    stripes = load_arch("stripes")
    assert (stripes.run_ahead, stripes.group_size, stripes.sync) == (0, 1, "lockstep")
    assert "run_ahead" not in stripes.knobs


def test_tactical_serial_follows_its_back_end():
    assert load_arch("tactical").serial == "activation"
    assert load_arch("tactical", backend="dadiannao").serial == "none"
    with pytest.raises(ConfigError, match="tactical has no knob 'serial'"):
        load_arch("tactical", serial="weight")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"tiles": -3}, "tiles (-3) must be in 1..4096"),
    ({"tiles": 4.0}, "tiles (4.0) must be an integer"),
    ({"tiles": True}, "tiles (True) must be an integer"),
    ({"columns": 12, "group_size": 5}, "columns (12) must be a multiple of group_size (5)"),
    ({"encoding": "fixed"}, "encoding (fixed) must be one of: booth, binary, csd"),
    ({"serial": "sideways"}, "serial ('sideways') must be one of"),
    ({"serial": "both"}, "serial (both) must be one of: activation, weight"),
    ({"first_stage_bits": 5}, "first_stage_bits (5) must be in 0..4"),
    ({"clock_mhz": float("nan")}, "clock_mhz (nan) must be a finite number"),
    ({"clock_mhz": math.inf}, "clock_mhz (inf) must be a finite number"),
    ({"clock_mhz": 0}, "clock_mhz (0) must be > 0"),
    ({"clock_mhz": "fast"}, "clock_mhz ('fast') must be a finite number"),
    ({"warp": 9}, "unknown knob 'warp'"),
    ({"design": "stripes"}, "design cannot change"),
])
def test_bad_knobs(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_arch("pragmatic", **overrides)
    assert message in str(err.value)
    assert str(err.value).startswith("pragmatic: ")


def test_knob_specific_rules():
    with pytest.raises(ConfigError, match=r"serial_bits \(3\) must be one of: 1, 2, 4"):
        load_arch("loom", serial_bits=3)
    with pytest.raises(ConfigError, match=r"lanes \(16\) must be a multiple of group_size \(6\)"):
        load_arch("bitlet", group_size=6)
    with pytest.raises(ConfigError, match=r"group_size \(256\) must be in 1..255"):
        load_arch("bitlet", lanes=256, group_size=256)
    with pytest.raises(ConfigError, match=r"rows \(16\) must be a multiple of group_size \(3\)"):
        load_arch("weight_serial", group_size=3)  # weight-serial units are rows


def test_configs_are_frozen_values():
    a = load_arch("pragmatic")
    with pytest.raises(TypeError, match="read-only"):
        a.knobs["columns"] = 1
    b = a.replace(columns=1)
    assert a.columns == 16 and b.columns == 1 and a != b
    assert a == load_arch("pragmatic") and hash(a) == hash(load_arch("pragmatic"))


def test_yaml_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("design: stripes\nserial: activation\nencoding: fixed\ntiles: zero\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: tiles \('zero'\) must be an integer"):
        load_arch(bad)
    bad.write_text("design: stripes\ncolour: blue\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown knob 'colour'"):
        load_arch(bad)
    bad.write_text("design: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_arch(bad)
    bad.write_text("design: stripes\ncolumns: 4\ncolumns: 8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML \(line 3\): duplicate key 'columns'"):
        load_arch(bad)
    bad.write_text("columns: 4\n")
    with pytest.raises(ConfigError, match="bad.yaml: field 'design' is required"):
        load_arch(bad)
    bad.write_text("design: warp_drive\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: design \('warp_drive'\) must be one of"):
        load_arch(bad)
    with pytest.raises(ConfigError, match="unknown architecture 'nope'"):
        load_arch("nope")
    with pytest.raises(ConfigError, match="an architecture is a preset name"):
        load_arch(42)


def test_parse_knob_value():
    assert parse_knob_value("columns", "4") == 4
    assert parse_knob_value("minor_bit", "true") is True
    assert parse_knob_value("encoding", "csd") == "csd"
    assert parse_knob_value("clock_mhz", "1e3") == "1e3"  # YAML 1.1: not a float; the knob check refuses it
    with pytest.raises(ConfigError):
        parse_knob_value("bogus", "1")


# Anything a YAML file can hold: every outcome is a config or a one-line ConfigError, never another exception.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["booth", "weight", "lockstep", "spread", "T", "pragmatic"]))
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2))


@given(st.sampled_from([d.value for d in Design] + ["nope", 3, None]),
       st.dictionaries(st.sampled_from([*KNOBS, "name", "description", "colour", 7]), values, max_size=6))
def test_fuzzed_configs_give_a_config_or_a_config_error(design, fields):
    data = {"design": design, **fields}
    try:
        arch = arch_from_dict(data, "fuzz.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml: ")
        return
    assert arch_from_dict(yaml.safe_load(yaml.safe_dump(arch.to_dict())), "again.yaml") == arch  # round trip


def test_constructor_fills_defaults():
    arch = ArchConfig("mine", "swis", {"shared_terms": 2})
    assert arch.shared_terms == 2 and arch.group_size == 8 and arch.tiles == 16
