#!/usr/bin/env python3
"""Quantized Hugging Face checkpoints for herd's loader (src/model/checkpoint-quant.cpp), with references.

Run offline on a developer machine; CI only reads the committed output in tests/data/quantized/.
Needs torch, transformers, safetensors, numpy and compressed-tensors (written with torch 2.15,
transformers 5.25.0, compressed-tensors 0.20.1):

  pip install torch transformers safetensors numpy compressed-tensors==0.20.1
  python3 tests/reference/make_quantized_fixtures.py

One random Llama (vocabulary 256, hidden 256, intermediate 384, 2 layers, 4 query heads over 2 KV
heads of 64, untied embeddings, plain RoPE at theta 500000; the weights of make_fixtures.py's
`randomise`, BF16-representable) is written in each format's published layout as
tests/data/quantized/NAME/{config.json, model.safetensors}. Every q, k, v, o, gate, up and down
projection is quantized; the embedding, the norms and lm_head stay BF16.

  ct-fp8-channel     compressed-tensors "float-quantized", written by compressed-tensors itself
                     (apply_quantization_config with its FP8_DYNAMIC preset, then
                     ModelCompressor.compress_model, save_pretrained, update_config): weight F8_E4M3
                     [out, in], weight_scale BF16 [out, 1] (the weight's dtype, as compressed-tensors
                     makes it) from the row's min and max as llm-compressor's minmax observer takes
                     them (calculate_qparams); activations dynamic per token; ignore ["lm_head"].
  ct-fp8-tensor      the same with its FP8 preset: one BF16 weight_scale [1] per tensor, and a static
                     input_scale BF16 [1] from the largest |input| of each layer over 4 calibration
                     sequences (static_minmax).
  fbgemm-fp8         Meta's FP8 layout as transformers' fbgemm_fp8 quantizer writes it: weight F8_E4M3,
                     weight_scale F32 [out, 1] = row max / 448 (transformers' pure-torch
                     quantize_fp8_per_row); activation_scale_ub 1200, modules_to_not_convert ["lm_head"].
  awq-g128           AutoAWQ's GEMM packing of round-to-nearest asymmetric 4-bit groups of 128 (AWQ's
                     min/max scales and zero points): qweight I32 [in, out/8], nibble j of a word holds
                     output column AWQ_ORDER[j] of its 8 (AWQ_ORDER = 0,2,4,6,1,3,5,7); qzeros I32
                     [in/128, out/8] the same way; scales F16 [in/128, out].
  gptq-g128-sym      GPTQ (AutoGPTQ / GPTQModel, checkpoint_format "gptq", zero points stored minus one)
                     of round-to-nearest symmetric groups of 128 (GPTQ's find_params: zero point 8,
                     stored as 7): qweight I32 [in/8, out] (input row k in bits 4 * (k % 8)), qzeros I32
                     [groups, out/8] (output column o in bits 4 * (o % 8)), scales F16 [groups, out],
                     g_idx I32 [in] = k // 128.
  gptq-g32-asym-actorder
                     asymmetric groups of 32 in act order (desc_act, checkpoint_format "gptq_v2", zero
                     points stored as they are): each layer input gets a random column order perm, as
                     GPTQ's Hessian order would (q, k and v share one, gate and up share one, o and
                     down have their own), and g_idx[perm[j]] = j // 32; each group's scale and zero
                     point come from its own columns, and qweight keeps the columns in input order.
  gptq-g128-asym-v1  asymmetric groups of 128, checkpoint_format "gptq": a stored zero point is zero - 1,
                     so zero points are kept in 1..15 (GPTQ's round(-min / scale) is 0 only for a group
                     with no negative value; such a zero point is raised to 1) for the rule to round-trip.

For each, tests/data/quantized/NAME.ref.safetensors holds ids F32 [64] (token ids, exact in F32) and
logits F32 [64, 256]: transformers in F32, at every position, on weights dequantized from the
written file by the format's reference rule in F32 (FP8: e4m3 * scale; AWQ and GPTQ:
(q - zero) * scale, the stored zero point plus one for checkpoint_format "gptq"), all other weights
the BF16 values upcast. Before writing, the script checks the files from another direction:
compressed-tensors' own decompression (FloatQuantizationCompressor.decompress) of each FP8 file
gives the reference weights (in F32, and rounded to BF16 as it computes them with BF16 scales);
the fbgemm file holds what transformers' quantize_fp8_per_row makes; an AWQ unpacking in vLLM's
order (AWQ_REVERSE_ORDER = 0,4,1,5,2,6,3,7 over shifted words) and GPTQ's bit-shift unpacking
(zeros + 1 for the original format) recover every quantized integer and zero point. It prints the
largest |dequantized - BF16 weight| and the reference logits' largest magnitude per variant.

tests/data/quantized/bad/ holds small checkpoints herd must refuse, from a tinier random model
(vocabulary 256, hidden 96, intermediate 192, 1 layer, 2 heads over 1 KV head of 48, tied
embeddings; no lm_head tensor), each config.json plus model.safetensors:
  awq-gemv       AWQ groups of 32 with quantization_config.version "gemv" (the tensors are GEMM-packed)
  gptq-8bit      GPTQ groups of 32 with bits 8, packed as GPTQ packs 8 bits (4 values per int32)
  ct-int4        compressed-tensors "pack-quantized": 4-bit symmetric groups of 32 written by
                 compressed-tensors (weight_packed I32, weight_scale BF16, weight_shape I64)
  fp8-nan        ct-fp8-channel with the byte of model.layers.0.mlp.down_proj.weight[3, 5] set to
                 0x7f (an E4M3 NaN)
  fp8-no-scale   ct-fp8-channel without model.layers.0.self_attn.k_proj.weight_scale
  gptq-bad-gidx  GPTQ groups of 32 (3 groups) with g_idx[7] of model.layers.0.mlp.up_proj set to 3
  awq-group-48   AWQ packed in groups of 48, group_size 48
Re-running writes byte-identical files.
"""
import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fixtures import randomise  # noqa: E402

OUT = HERE.parent / "data" / "quantized"
N_POS = 64
VOCAB = 256
PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]          # nibble j of a word -> output column of its 8
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]  # vLLM's: shifted nibble position -> its column
ST_META = {"format": "pt"}


# ---------------------------------------------------------------------------------------------
# Base models

def base_config(tiny=False):
    if tiny:
        shape = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=1, num_attention_heads=2,
                     num_key_value_heads=1, head_dim=48, tie_word_embeddings=True)
    else:
        shape = dict(hidden_size=256, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=64, tie_word_embeddings=False)
    return LlamaConfig(vocab_size=VOCAB, max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=1,
                       eos_token_id=2, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                       attn_implementation="eager", **shape)


def make_model(cfg, seed):
    model = LlamaForCausalLM(cfg).eval()
    randomise(model, seed)
    return model


def linear_names(cfg):
    return [f"model.layers.{i}.{p}" for i in range(cfg.num_hidden_layers) for p in PROJ]


def bf16_state(model):
    """Every stored tensor as BF16 (the weights are BF16-representable), tied lm_head left out."""
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def write_config(d, cfg, qc):
    """config.json as transformers saves it (BF16 dtype), with the quantization_config added."""
    d.mkdir(parents=True, exist_ok=True)
    c = copy.deepcopy(cfg)
    c.dtype = torch.bfloat16
    c.architectures = ["LlamaForCausalLM"]
    c.save_pretrained(d)
    path = d / "config.json"
    data = json.loads(path.read_text())
    data["quantization_config"] = qc
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_file(path):
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def write_dir(d, cfg, qc, tensors):
    shutil.rmtree(d, ignore_errors=True)
    write_config(d, cfg, qc)
    save_file(tensors, str(d / "model.safetensors"), metadata=ST_META)


# ---------------------------------------------------------------------------------------------
# FP8: compressed-tensors and fbgemm

def calibration_inputs(model, cfg):
    """Largest |input| of each projection over 4 random sequences (static_minmax's statistic)."""
    seen = {}
    hooks = []
    for name in linear_names(cfg):
        def hook(_m, args, name=name):
            seen[name] = max(seen.get(name, 0.0), float(args[0].abs().max()))
        hooks.append(model.get_submodule(name).register_forward_pre_hook(hook))
    ids = torch.randint(0, VOCAB, (4, 32), generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    return seen


def write_ct_fp8(model, d, strategy):
    """compressed-tensors FP8 through compressed-tensors' own apply / compress / save path."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme, apply_quantization_config
    from compressed_tensors.quantization.quant_scheme import FP8, FP8_DYNAMIC
    from compressed_tensors.quantization.utils import calculate_qparams

    cfg = model.config
    amax = calibration_inputs(model, cfg) if strategy == "tensor" else {}
    m = copy.deepcopy(model).to(torch.bfloat16)
    preset = FP8_DYNAMIC if strategy == "channel" else FP8
    scheme = QuantizationScheme(targets=["Linear"], **copy.deepcopy(preset))
    assert scheme.weights.strategy == strategy
    apply_quantization_config(m, QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"]))
    with torch.no_grad():
        for name in linear_names(cfg):
            mod = m.get_submodule(name)
            s = mod.quantization_scheme
            w = mod.weight
            if strategy == "channel":
                lo, hi = w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
            else:
                lo, hi = w.amin(), w.amax()
            scale, _ = calculate_qparams(lo, hi, s.weights)
            assert scale.shape == mod.weight_scale.shape, (scale.shape, mod.weight_scale.shape)
            mod.weight_scale.copy_(scale)
            if hasattr(mod, "input_scale"):
                a = torch.tensor(amax[name], dtype=torch.bfloat16)
                scale, _ = calculate_qparams(-a, a, s.input_activations)
                mod.input_scale.copy_(scale.reshape(mod.input_scale.shape))
    compressor = ModelCompressor.from_pretrained_model(m)
    compressor.compress_model(m)
    shutil.rmtree(d, ignore_errors=True)
    m.save_pretrained(d)
    compressor.update_config(str(d))
    (d / "generation_config.json").unlink(missing_ok=True)
    check_ct_decompress(d, cfg)


def fp8_reference(tensors, cfg):
    """e4m3 * scale in F32, for every quantized layer of a file."""
    return {f"{n}.weight": tensors[f"{n}.weight"].float() * tensors[f"{n}.weight_scale"].float()
            for n in linear_names(cfg)}


def check_ct_decompress(d, cfg):
    """compressed-tensors' float-quantized decompression of the saved file = the F32 reference."""
    from compressed_tensors.compressors.naive_quantized.base import FloatQuantizationCompressor
    from compressed_tensors.quantization import QuantizationConfig

    qc = QuantizationConfig.model_validate(json.loads((d / "config.json").read_text())["quantization_config"])
    scheme = qc.config_groups["group_0"]
    tensors = read_file(d / "model.safetensors")
    ref = fp8_reference(tensors, cfg)
    for n in linear_names(cfg):
        local = {k[len(n) + 1:]: v for k, v in tensors.items() if k.startswith(n + ".")}
        assert local["weight"].dtype == torch.float8_e4m3fn
        out = FloatQuantizationCompressor.decompress(local, scheme)["weight"]
        # compressed-tensors multiplies in the scale's dtype (BF16): one rounding of the exact product.
        assert out.dtype == local["weight_scale"].dtype
        assert torch.equal(out, ref[f"{n}.weight"].to(out.dtype)), n
        f32 = dict(local, weight_scale=local["weight_scale"].float())
        assert torch.equal(FloatQuantizationCompressor.decompress(f32, scheme)["weight"], ref[f"{n}.weight"]), n


def write_fbgemm_fp8(model, d):
    from transformers.integrations.compressed_tensors import quantize_fp8_per_row

    cfg = model.config
    tensors = bf16_state(model)
    for n in linear_names(cfg):
        w = tensors.pop(f"{n}.weight")
        # row max / 448 in F32, weight / scale clamped to +-448, rounded to E4M3
        row_max = w.float().abs().amax(dim=1)
        scale = torch.where(row_max > 0, row_max, torch.ones_like(row_max)) / 448.0
        q = torch.clamp(w.float() / scale[:, None], -448.0, 448.0).to(torch.float8_e4m3fn)
        tq, ts = quantize_fp8_per_row(w)
        assert torch.equal(q.view(torch.uint8), tq.view(torch.uint8)) and torch.equal(scale, ts), n
        tensors[f"{n}.weight"] = q.contiguous()
        tensors[f"{n}.weight_scale"] = scale.reshape(-1, 1).contiguous()
    qc = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0, "modules_to_not_convert": ["lm_head"]}
    write_dir(d, cfg, qc, tensors)
    # compressed-tensors' per-channel dequantization of the same tensors, in F32: the same weights.
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize
    args = QuantizationArgs(num_bits=8, type="float", strategy="channel", symmetric=True)
    saved = read_file(d / "model.safetensors")
    ref = fp8_reference(saved, cfg)
    for n in linear_names(cfg):
        assert saved[f"{n}.weight_scale"].dtype == torch.float32
        out = dequantize(saved[f"{n}.weight"], saved[f"{n}.weight_scale"], None, args)
        assert torch.equal(out, ref[f"{n}.weight"]), n


# ---------------------------------------------------------------------------------------------
# 4-bit packings

def pack_along(values, axis, bits=4, order=None):
    """int tensor -> int32 words packing 32/bits consecutive entries along `axis` (0 or 1), entry j of
    a run in bits bits*j; order[j], if given, is the entry of the run that position j holds."""
    per = 32 // bits
    v = values.to(torch.int64).numpy().astype(np.uint32)
    if axis == 0:
        v = v.T
    rows, cols = v.shape
    assert cols % per == 0
    v = v.reshape(rows, cols // per, per)
    if order is not None:
        v = v[:, :, order]
    words = np.zeros((rows, cols // per), dtype=np.uint32)
    for j in range(per):
        words |= v[:, :, j] << np.uint32(bits * j)
    if axis == 0:
        words = words.T
    return torch.from_numpy(np.ascontiguousarray(words).view(np.int32))


def awq_quantize(w, group):
    """AutoAWQ's round-to-nearest: per group min/max, scale (max - min) / 15 (F16),
    zero = clamp(-round(min / scale), 0, 15), q = clamp(round(w / scale) + zero, 0, 15)."""
    out, inp = w.shape
    wg = w.float().reshape(out, inp // group, group)
    hi, lo = wg.amax(-1), wg.amin(-1)
    scales = ((hi - lo).clamp(min=1e-5) / 15).to(torch.float16)
    s = scales.float()
    zeros = (-torch.round(lo / s)).clamp(0, 15)
    q = (torch.round(wg / s[..., None]) + zeros[..., None]).clamp(0, 15)
    return q.reshape(out, inp).to(torch.int32), zeros.to(torch.int32), scales  # [out,in], [out,G], [out,G]


def awq_unpack(words):
    """vLLM's awq_dequantize reference order: shift every word by 0, 4, ..., 28, then reorder each 8."""
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    nib = torch.bitwise_right_shift(words[:, :, None], shifts[None, None, :]).reshape(words.shape[0], -1)
    idx = torch.arange(nib.shape[1]).reshape(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
    return nib[:, idx] & 0xF


def write_awq(model, d, group, qc_extra=None):
    cfg = model.config
    tensors = bf16_state(model)
    deq = {}
    for n in linear_names(cfg):
        w = tensors.pop(f"{n}.weight")
        q, z, s = awq_quantize(w, group)
        tensors[f"{n}.qweight"] = pack_along(q.t(), 1, order=AWQ_ORDER)         # [in, out/8]
        tensors[f"{n}.qzeros"] = pack_along(z.t(), 1, order=AWQ_ORDER)          # [in/g, out/8]
        tensors[f"{n}.scales"] = s.t().contiguous()                              # [in/g, out]
        g = torch.arange(w.shape[1]) // group
        deq[f"{n}.weight"] = (q - z[:, g]).float() * s.float()[:, g]
    qc = {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True, "version": "gemm",
          "modules_to_not_convert": None, **(qc_extra or {})}
    write_dir(d, cfg, qc, tensors)
    saved = read_file(d / "model.safetensors")
    for n in linear_names(cfg):
        w = model.get_submodule(n).weight
        q, z, s = awq_quantize(w, group)
        assert torch.equal(awq_unpack(saved[f"{n}.qweight"]), q.t()), n
        assert torch.equal(awq_unpack(saved[f"{n}.qzeros"]), z.t()), n
        assert saved[f"{n}.scales"].dtype == torch.float16 and torch.equal(saved[f"{n}.scales"], s.t()), n
    return deq


def gptq_quantize(w, g_idx, n_groups, sym, bits=4, zero_min=0):
    """GPTQ's find_params per group (the columns g_idx puts in it), then round to nearest:
    range [min(x, 0), max(x, 0)], symmetric: +-max|x| and zero (maxq + 1) / 2; scale stored F16."""
    maxq = 2 ** bits - 1
    out, inp = w.shape
    wf = w.float()
    scales = torch.empty(out, n_groups)
    zeros = torch.empty(out, n_groups)
    for g in range(n_groups):
        cols = wf[:, g_idx == g]
        xmin = torch.minimum(cols.amin(1), torch.zeros(out))
        xmax = torch.maximum(cols.amax(1), torch.zeros(out))
        if sym:
            xmax = torch.maximum(xmin.abs(), xmax)
            xmin = torch.where(xmin < 0, -xmax, xmin)
        both0 = (xmin == 0) & (xmax == 0)
        xmin, xmax = torch.where(both0, -1.0, xmin), torch.where(both0, 1.0, xmax)
        scale = ((xmax - xmin) / maxq).to(torch.float16)
        scales[:, g] = scale.float()
        zeros[:, g] = torch.full_like(xmin, (maxq + 1) // 2) if sym else torch.round(-xmin / scale.float())
    zeros = zeros.clamp(zero_min, maxq)
    gi = g_idx.long()
    q = (torch.round(wf / scales[:, gi]) + zeros[:, gi]).clamp(0, maxq)
    return q.to(torch.int32), zeros.to(torch.int32), scales.to(torch.float16)


def gptq_unpack(qweight, qzeros, bits, v1):
    """GPTQ's QuantLinear unpacking: bit shifts along dim 0 of qweight and dim 1 of qzeros."""
    per, maxq = 32 // bits, 2 ** bits - 1
    wf = torch.arange(0, 32, bits, dtype=torch.int32)
    zeros = torch.bitwise_right_shift(qzeros.unsqueeze(2).expand(-1, -1, per), wf.unsqueeze(0))
    zeros = zeros.reshape(qzeros.shape[0], -1) & maxq
    if v1:
        zeros = (zeros + 1) & maxq
    weight = torch.bitwise_right_shift(qweight.unsqueeze(1).expand(-1, per, -1), wf.unsqueeze(-1))
    weight = weight.reshape(-1, qweight.shape[1]) & maxq
    return weight, zeros  # [in, out], [groups, out]


def gptq_qc(group, sym, desc_act, fmt, bits=4):
    """quantization_config as GPTQModel writes it into config.json."""
    return {"bits": bits, "checkpoint_format": fmt, "damp_percent": 0.01, "desc_act": desc_act, "dynamic": None,
            "group_size": group, "lm_head": False,
            "meta": {"damp_auto_increment": 0.0025, "damp_percent": 0.01, "mse": 0.0,
                     "quantizer": ["gptqmodel:2.2.0"], "static_groups": False, "true_sequential": True,
                     "uri": "https://github.com/modelcloud/gptqmodel"},
            "pack_dtype": "int32", "quant_method": "gptq", "static_groups": False, "sym": sym,
            "true_sequential": True}


def act_order_perms(cfg, seed):
    """One random column order per layer input: q/k/v share one, gate/up one, o and down their own."""
    gen = torch.Generator().manual_seed(seed)
    perms = {}
    for i in range(cfg.num_hidden_layers):
        attn = torch.randperm(cfg.hidden_size, generator=gen)
        o = torch.randperm(cfg.num_attention_heads * cfg.head_dim, generator=gen)
        mlp = torch.randperm(cfg.hidden_size, generator=gen)
        down = torch.randperm(cfg.intermediate_size, generator=gen)
        p = f"model.layers.{i}."
        perms.update({p + "self_attn.q_proj": attn, p + "self_attn.k_proj": attn, p + "self_attn.v_proj": attn,
                      p + "self_attn.o_proj": o, p + "mlp.gate_proj": mlp, p + "mlp.up_proj": mlp,
                      p + "mlp.down_proj": down})
    return perms


def write_gptq(model, d, group, sym, fmt, perms=None, bits=4):
    cfg = model.config
    v1 = fmt == "gptq"
    tensors = bf16_state(model)
    deq, ints = {}, {}
    for n in linear_names(cfg):
        w = tensors.pop(f"{n}.weight")
        inp = w.shape[1]
        n_groups = inp // group
        if perms is None:
            g_idx = (torch.arange(inp) // group).to(torch.int32)
        else:
            g_idx = torch.empty(inp, dtype=torch.int32)
            g_idx[perms[n]] = (torch.arange(inp) // group).to(torch.int32)
        # The original format stores zero - 1: zero points 0 would not survive it.
        q, z, s = gptq_quantize(w, g_idx, n_groups, sym, bits, zero_min=1 if v1 else 0)
        ints[n] = (q, z)
        tensors[f"{n}.qweight"] = pack_along(q.t(), 0, bits)                    # [in/8, out]
        tensors[f"{n}.qzeros"] = pack_along(z.t() - (1 if v1 else 0), 1, bits)  # [groups, out/8]
        tensors[f"{n}.scales"] = s.t().contiguous()                              # [groups, out]
        tensors[f"{n}.g_idx"] = g_idx
        gi = g_idx.long()
        deq[f"{n}.weight"] = (q - z[:, gi]).float() * s.float()[:, gi]
    write_dir(d, cfg, gptq_qc(group, sym, perms is not None, fmt, bits), tensors)
    saved = read_file(d / "model.safetensors")
    for n in linear_names(cfg):
        q, z = ints[n]
        uq, uz = gptq_unpack(saved[f"{n}.qweight"], saved[f"{n}.qzeros"], bits, v1)
        assert torch.equal(uq, q.t()) and torch.equal(uz, z.t()), n
        if sym:
            assert bool((z == 2 ** (bits - 1)).all()), n
    return deq


# ---------------------------------------------------------------------------------------------
# References

def reference_logits(cfg, d, deq, ids):
    """transformers in F32 on the dequantized weights and the file's other tensors upcast."""
    tensors = read_file(d / "model.safetensors")
    quant_suffixes = (".qweight", ".qzeros", ".scales", ".g_idx", ".weight_scale", ".input_scale")
    sd = {k: v.float() for k, v in tensors.items()
          if not k.endswith(quant_suffixes) and v.dtype == torch.bfloat16}
    sd.update(deq)
    model = LlamaForCausalLM(cfg).float().eval()  # fresh: F32 rotary buffers
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().contiguous()


def max_err(model, deq):
    return max(float((v - model.get_submodule(k[:-len(".weight")]).weight.detach().float()).abs().max())
               for k, v in deq.items())


def write_variants(ids):
    cfg = base_config()
    model = make_model(cfg, 4242)
    variants = {}

    def fp8_ct(d, strategy):
        write_ct_fp8(model, d, strategy)
        return fp8_reference(read_file(d / "model.safetensors"), cfg)

    def fbgemm(d):
        write_fbgemm_fp8(model, d)
        return fp8_reference(read_file(d / "model.safetensors"), cfg)

    variants["ct-fp8-channel"] = lambda d: fp8_ct(d, "channel")
    variants["ct-fp8-tensor"] = lambda d: fp8_ct(d, "tensor")
    variants["fbgemm-fp8"] = fbgemm
    variants["awq-g128"] = lambda d: write_awq(model, d, 128)
    variants["gptq-g128-sym"] = lambda d: write_gptq(model, d, 128, True, "gptq")
    variants["gptq-g32-asym-actorder"] = lambda d: write_gptq(model, d, 32, False, "gptq_v2",
                                                               perms=act_order_perms(cfg, 77))
    variants["gptq-g128-asym-v1"] = lambda d: write_gptq(model, d, 128, False, "gptq")

    for name, write in variants.items():
        d = OUT / name
        deq = write(d)
        assert set(deq) == {f"{n}.weight" for n in linear_names(cfg)}
        logits = reference_logits(cfg, d, deq, ids)
        save_file({"ids": torch.tensor(ids, dtype=torch.float32), "logits": logits},
                  str(OUT / f"{name}.ref.safetensors"), metadata=ST_META)
        print(f"{name}: max|dequantized - bf16 weight| {max_err(model, deq):.4g}, "
              f"max|logit| {float(logits.abs().max()):.4g}")


def write_bad():
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (QuantizationArgs, QuantizationConfig, QuantizationScheme,
                                                 apply_quantization_config)
    from compressed_tensors.quantization.utils import calculate_qparams

    bad = OUT / "bad"
    cfg = base_config(tiny=True)
    model = make_model(cfg, 4343)

    write_awq(model, bad / "awq-gemv", 32, {"version": "gemv"})
    write_gptq(model, bad / "gptq-8bit", 32, True, "gptq", bits=8)
    write_awq(model, bad / "awq-group-48", 48)

    d = bad / "gptq-bad-gidx"
    write_gptq(model, d, 32, True, "gptq")
    t = read_file(d / "model.safetensors")
    t["model.layers.0.mlp.up_proj.g_idx"][7] = 3
    save_file(t, str(d / "model.safetensors"), metadata=ST_META)

    d = bad / "fp8-nan"
    write_ct_fp8(model, d, "channel")
    t = read_file(d / "model.safetensors")
    w = t["model.layers.0.mlp.down_proj.weight"].view(torch.uint8).clone()
    w[3, 5] = 0x7F
    t["model.layers.0.mlp.down_proj.weight"] = w.view(torch.float8_e4m3fn)
    save_file(t, str(d / "model.safetensors"), metadata=ST_META)

    d = bad / "fp8-no-scale"
    write_ct_fp8(model, d, "channel")
    t = read_file(d / "model.safetensors")
    del t["model.layers.0.self_attn.k_proj.weight_scale"]
    save_file(t, str(d / "model.safetensors"), metadata=ST_META)

    # compressed-tensors INT4 (pack-quantized), written by compressed-tensors.
    d = bad / "ct-int4"
    m = copy.deepcopy(model).to(torch.bfloat16)
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", group_size=32, symmetric=True)
    apply_quantization_config(m, QuantizationConfig(
        config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=args)}, ignore=["lm_head"]))
    with torch.no_grad():
        for n in linear_names(cfg):
            mod = m.get_submodule(n)
            wg = mod.weight.reshape(mod.weight.shape[0], -1, 32)
            scale, zp = calculate_qparams(wg.amin(-1), wg.amax(-1), args)
            mod.weight_scale.copy_(scale)
            mod.weight_zero_point.copy_(zp)
    compressor = ModelCompressor.from_pretrained_model(m)
    compressor.compress_model(m)
    shutil.rmtree(d, ignore_errors=True)
    m.save_pretrained(d)
    compressor.update_config(str(d))
    (d / "generation_config.json").unlink(missing_ok=True)
    assert json.loads((d / "config.json").read_text())["quantization_config"]["format"] == "pack-quantized"
    assert "model.layers.0.self_attn.q_proj.weight_packed" in read_file(d / "model.safetensors")
    print("bad:", ", ".join(sorted(p.name for p in bad.iterdir())))


def main():
    torch.set_num_threads(1)  # one summation order, whatever the machine
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    ids = [int(x) for x in rng.integers(0, VOCAB, N_POS)]
    write_variants(ids)
    write_bad()
    import compressed_tensors
    import transformers
    print("transformers", transformers.__version__, "torch", torch.__version__, "compressed-tensors",
          compressed_tensors.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
