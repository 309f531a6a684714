"""Every preset's geometry, clock and listed knobs match the preset table of docs/models.md, and every preset file
is in it; the 8-bit baseline refuses wider operands."""

from __future__ import annotations

import re

import numpy as np
import pytest

from simulator import ConfigError, load_arch, simulate_layer
from simulator.knobs import plain
from workloads import Layer

from .conftest import REPO

MACHINE = ("tiles", "rows", "columns", "lanes", "pe_width", "clock_mhz")


def _table() -> dict[str, dict[str, str]]:
    """The rows of the table under '## Presets' in docs/models.md, by preset name."""
    text = (REPO / "docs" / "models.md").read_text(encoding="utf-8")
    section = text.split("\n## Presets\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(header) >= {"preset", "design", *MACHINE, "knobs"}, header
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        assert cells["preset"] not in rows, f"docs/models.md lists {cells['preset']} twice"
        rows[cells["preset"]] = cells
    return rows


TABLE = _table()
FILES = sorted(p.stem for p in (REPO / "arch_configs").glob("*.yaml"))


def test_every_preset_file_is_in_the_table_and_nothing_else():
    assert sorted(TABLE) == FILES


def _knobs(cell: str) -> dict[str, str]:
    """`a=1, b=x` -> {'a': '1', 'b': 'x'} (empty cell: none)."""
    cell = cell.strip("`")
    return dict(item.split("=", 1) for item in cell.split(", ")) if cell else {}


@pytest.mark.parametrize("name", FILES)
def test_preset_matches_its_row_in_docs_models(name):
    row = TABLE[name]
    arch = load_arch(REPO / "arch_configs" / f"{name}.yaml")
    assert arch.name == name and arch.design.value == row["design"]
    for knob in MACHINE:
        assert getattr(arch, knob) == float(row[knob]), (name, knob, getattr(arch, knob), row[knob])
    for knob, text in _knobs(row["knobs"]).items():
        value = plain(getattr(arch, knob))
        assert str(value).lower() == text.lower(), (name, knob, value, text)


def test_dnnsim_presets_use_dnnsims_depthwise_mapping_and_paper_presets_the_default():
    for name in FILES:
        assert (load_arch(name).depthwise_mapping == "dnnsim") == name.startswith("dnnsim_"), name


def test_equal_peak_of_the_both_serial_presets():
    # docs/models.md: 256 one-bit x one-bit lanes per 16b x 16b MAC of dadiannao
    base = load_arch("dadiannao").chip_lanes
    for name in ("loom", "laconic"):
        assert load_arch(name).chip_lanes == 256 * base
        assert load_arch(f"dnnsim_{name}").chip_lanes * 16 == 256 * base


def test_the_8_bit_baseline_refuses_wider_operands_and_runs_8_bit_ones_as_dadiannao():
    rng = np.random.default_rng(0)
    acts, wgt = rng.integers(0, 256, (20, 5, 5)), rng.integers(-128, 128, (18, 20, 3, 3))
    layer = Layer.conv("c", acts, wgt, padding=1, act_bits=8, weight_bits=8)
    int8 = load_arch("dadiannao_int8")
    assert simulate_layer(int8, layer)["cycles"] == simulate_layer(load_arch("dadiannao"), layer)["cycles"]
    wide = Layer.conv("w", acts, wgt * 2, padding=1, act_bits=8, weight_bits=9)
    with pytest.raises(ConfigError, match=re.escape("layer 'w': weight_bits (9) exceeds the PE width of "
                                                    "dadiannao_int8 (pe_width=8)")):
        simulate_layer(int8, wide)
