"""The benchmark's models: a random-weight GGUF of Llama 3.2 1B's shape (from models/llama-3.2-1b.json)
in F16 with Llama 3's real vocabulary, quantized by llama.cpp; and the real SmolLM2-135M-Instruct
Q4_1 file that scripts/fetch-model provides. Everything is cached in the scratch folder."""
import json
import math
from pathlib import Path

import gguf
import numpy as np

import llamacpp
from common import BenchError, log, run

ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "models" / "llama-3.2-1b.json"
VOCAB = ROOT / "tests" / "data" / "gguf" / "llama3-vocab.gguf"
QUANTS = ["Q8_0", "Q4_0", "Q4_K_M"]
WEIGHT_STD = 0.02  # like a trained model's (and HF's initializer_range): activations stay far from F16's limits
ROWS_PER_CHUNK = 4096  # rows made at a time, to bound the float32 scratch memory


def _rope_freqs(cfg):
    """llama.cpp's rope_freqs tensor for llama3 RoPE scaling: one divisor per frequency pair, as its
    converter computes it from config.json."""
    rs = cfg["rope_scaling"]
    dim = cfg["head_dim"]
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    out = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * cfg["rope_theta"] ** (i / dim)
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def _tensors(cfg, n_layer):
    """(name, numpy shape, dtype) in file order; shapes are [rows, cols] as gguf-py takes them."""
    d, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    # Tied embeddings: no output.weight, token_embd is also the LM head.
    out = [("token_embd.weight", (v, d), np.float16), ("rope_freqs.weight", (cfg["head_dim"] // 2,), np.float32)]
    for i in range(n_layer):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", (d,), np.float32), (b + "attn_q.weight", (q, d), np.float16),
                (b + "attn_k.weight", (kv, d), np.float16), (b + "attn_v.weight", (kv, d), np.float16),
                (b + "attn_output.weight", (d, q), np.float16), (b + "ffn_norm.weight", (d,), np.float32),
                (b + "ffn_gate.weight", (ff, d), np.float16), (b + "ffn_up.weight", (ff, d), np.float16),
                (b + "ffn_down.weight", (d, ff), np.float16)]
    out.append(("output_norm.weight", (d,), np.float32))
    return out


def _copy_tokenizer(w):
    """Every tokenizer.* key of the vocabulary-only GGUF (Llama 3's 128,256 tokens and merges)."""
    r = gguf.GGUFReader(str(VOCAB))
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), gguf.GGUFValueType.ARRAY, f.types[-1])
        else:
            w.add_key_value(key, f.contents(), f.types[0])


def _write_f16(path, n_layer, seed=0):
    cfg = json.loads(PRESET.read_text())
    assert cfg["tie_word_embeddings"] and cfg["rope_scaling"]["rope_type"] == "llama3"
    w = gguf.GGUFWriter(None, "llama")
    w.add_name(f"random llama-3.2-1b shape, {n_layer} layers")
    w.add_block_count(n_layer)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    _copy_tokenizer(w)
    tensors = _tensors(cfg, n_layer)
    for name, shape, dtype in tensors:
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    # Header, metadata and tensor index first, then each tensor as it is made: the whole model is
    # never in memory.
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, shape, dtype in tensors:
        if name == "rope_freqs.weight":
            w.write_tensor_data(_rope_freqs(cfg))
        elif len(shape) == 1:  # RMSNorm weights
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            t = np.empty(shape, dtype=np.float16)
            for r in range(0, shape[0], ROWS_PER_CHUNK):
                block = rng.standard_normal((min(ROWS_PER_CHUNK, shape[0] - r), shape[1]), dtype=np.float32)
                t[r:r + len(block)] = block * WEIGHT_STD
            w.write_tensor_data(t)
    w.close()


def llama_1b_shape(scratch, tools, n_layer, threads):
    """{'F16': path, 'Q8_0': path, ...} for the 1B shape with n_layer layers, made when missing."""
    d = Path(scratch) / "bench-models"
    d.mkdir(parents=True, exist_ok=True)
    stem = f"llama-3.2-1b-shape-{n_layer}L"
    f16 = d / f"{stem}.F16.gguf"
    if not f16.exists():
        log(f"writing {f16.name}: random weights (normal, std {WEIGHT_STD}), Llama 3 vocabulary")
        part = f16.with_name(f16.name + ".part")
        _write_f16(part, n_layer)
        part.rename(f16)
    out = {"F16": f16}
    for q in QUANTS:
        out[q] = d / f"{stem}.{q}.gguf"
        if not out[q].exists():
            llamacpp.quantize(tools, f16, out[q], q, threads)
    return out


def smollm2():
    """The path scripts/fetch-model prints (it downloads the file once)."""
    path = Path(run([ROOT / "scripts" / "fetch-model"], "scripts/fetch-model (SmolLM2-135M-Instruct)",
                    timeout=900).strip())
    if not path.is_file():
        raise BenchError(f"scripts/fetch-model printed {path}, which is not a file")
    return path


def inspect(path):
    """{'tensor_types': {'Q4_K': 97, 'Q6_K': 17, ...}, 'weight_bytes_per_token': N}: the bytes of the
    matrices one decode step reads, every linear weight and the LM head (token_embd when tied,
    output.weight otherwise; an untied token_embd is only looked up, one row per token). Norms and
    rope_freqs are a few kilobytes and left out."""
    r = gguf.GGUFReader(str(path))
    names = {t.name for t in r.tensors}
    types, total = {}, 0
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        if len(t.shape) >= 2 and not (t.name == "token_embd.weight" and "output.weight" in names):
            total += int(t.n_bytes)
    return {"tensor_types": types, "weight_bytes_per_token": total}
