#!/usr/bin/env python3
"""GGUF fixtures for herd's GGUF loader and dequantizers, made with llama.cpp's own tools.

Run offline on a developer machine; CI only reads the committed output in tests/data/gguf/.
Needs torch, transformers, numpy, llama-cpp-python (built from source by pip), and the llama.cpp
tree that llama-cpp-python's source distribution vendors, for its converter and gguf-py:

  pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-*.tar.gz
  python3 tests/reference/make_gguf_fixtures.py llama_cpp_python-0.3.36/vendor/llama.cpp

It writes to tests/data/gguf/:
  gqa4-hd32-untied-llama3.F32.gguf, gqa4-hd128-tied-llama3.{F16,BF16}.gguf
      tiny models of tests/data/models converted by llama.cpp's convert_hf_to_gguf code (its
      tensor names, its q/k permutation, its rope_freqs for llama3 scaling) with a 256-token
      byte vocabulary (byte 0xFF replaced by " t", so that there is one merge). Their reference logits are tests/data/reference/NAME.safetensors.
  quant-{Q8_0,Q4_0,Q4_1,Q4_K_M,Q5_K_M}.gguf
      one random 256-wide model, converted to F32 and quantized by llama.cpp's quantizer
      (llama_model_quantize); Q4_K_M holds Q4_K and Q6_K tensors, Q5_K_M Q5_K and Q6_K. Its
      generation_config.json (temperature 0.7, top_p 0.8, top_k 40) becomes general.sampling.* keys.
  quant-*.ref.safetensors
      ids F32 [64] (token ids, exact in F32, which herd's safetensors reader takes); logits F32 [64, 256] from transformers run on the weights that the PyPI-style
      gguf-py numpy dequantizers recover from the file (q/k rows un-permuted); logits_llamacpp
      F32 [64, 256] from llama.cpp itself on the same file.
  dequant-expected.gguf
      for each quant file and each quantized type in it, the first rows of one tensor of that
      type, dequantized by gguf-py's numpy code, as F32 tensors named "FILE/TENSOR".
"""
import ctypes
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
OUT = DATA / "gguf"
N_POS = 64
QUANTS = ["Q8_0", "Q4_0", "Q4_1", "Q4_K_M", "Q5_K_M"]
DEQUANT_ROWS = 4


def setup_llama_cpp(tree):
    sys.path.insert(0, str(Path(tree) / "gguf-py"))
    sys.path.insert(0, str(tree))


def byte_alphabet():
    """GPT-2's bytes_to_unicode, in byte order."""
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, k = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(0x100 + k)
            k += 1
    return [out[b] for b in range(256)]


def convert(model_dir, ftype, out_path):
    """llama.cpp's converter on a tokenizer-less tiny model, with a 256-byte vocabulary."""
    import gguf
    from conversion.llama import LlamaModel

    class TinyLlama(LlamaModel):
        model_arch = gguf.MODEL_ARCH.LLAMA

        def set_vocab(self):
            w = self.gguf_writer
            w.add_tokenizer_model("gpt2")
            w.add_tokenizer_pre("llama-bpe")
            # llama.cpp needs at least one merge: byte 0xFF gives its id to " t".
            tokens = byte_alphabet()
            tokens[255] = tokens[0x20] + "t"
            w.add_token_list(tokens)
            w.add_token_types([gguf.TokenType.NORMAL] * 256)
            w.add_token_merges([tokens[0x20] + " t"])
            w.add_bos_token_id(1)
            w.add_eos_token_id(2)

    with torch.inference_mode():
        m = TinyLlama(Path(model_dir), ftype, Path(out_path))
        m.write()


def unpermute(w, n_head):
    """Inverse of LlamaModel.permute: interleaved (Meta) rows back to HF's half-split rows."""
    d = w.shape[0]
    return w.reshape(n_head, d // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def dequantized_state_dict(path, cfg):
    import gguf
    r = gguf.GGUFReader(str(path))
    sd = {}
    for t in r.tensors:
        if t.name == "rope_freqs.weight":
            continue
        shape = [int(x) for x in reversed(t.shape)]
        w = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        if t.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            name = "model.norm.weight"
        elif t.name == "output.weight":
            name = "lm_head.weight"
        else:
            _, layer, kind, _ = t.name.split(".")
            name = f"model.layers.{layer}.{HF_NAMES[kind]}.weight"
            if kind == "attn_q":
                w = unpermute(w, cfg.num_attention_heads)
            elif kind == "attn_k":
                w = unpermute(w, cfg.num_key_value_heads)
        sd[name] = torch.from_numpy(np.ascontiguousarray(w))
    return sd


def transformers_logits(cfg, sd, ids):
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM(cfg).float().eval()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    tied = ["lm_head.weight"] if cfg.tie_word_embeddings else []
    assert not unexpected and all("rotary" in m or m in tied for m in missing), (missing, unexpected)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def llamacpp_logits(path, ids):
    from llama_cpp import Llama
    llm = Llama(model_path=str(path), n_ctx=2 * N_POS, logits_all=True, verbose=False, n_threads=2)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def quantize(src, dst, name):
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    assert rc == 0, f"quantize {name} failed: {rc}"


def make_quant_model(tmp):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(31)
    cfg = LlamaConfig(vocab_size=256, hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
                      rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 32})
    model = LlamaForCausalLM(cfg).float()
    # Norm weights away from 1 so that a mix-up of norm tensors shows.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    d = Path(tmp) / "quant-src"
    model.save_pretrained(d)
    # Sampling defaults, which the converter writes as general.sampling.* keys.
    (d / "generation_config.json").write_text(json.dumps({"do_sample": True, "temperature": 0.7, "top_p": 0.8,
                                                           "top_k": 40, "bos_token_id": 1, "eos_token_id": 2}))
    return d, cfg


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    setup_llama_cpp(sys.argv[1])
    import gguf
    OUT.mkdir(parents=True, exist_ok=True)

    # Exact formats, checked against the committed transformers references.
    convert(DATA / "models" / "gqa4-hd32-untied-llama3", gguf.LlamaFileType.ALL_F32,
            OUT / "gqa4-hd32-untied-llama3.F32.gguf")
    convert(DATA / "models" / "gqa4-hd128-tied-llama3", gguf.LlamaFileType.MOSTLY_F16,
            OUT / "gqa4-hd128-tied-llama3.F16.gguf")
    convert(DATA / "models" / "gqa4-hd128-tied-llama3", gguf.LlamaFileType.MOSTLY_BF16,
            OUT / "gqa4-hd128-tied-llama3.BF16.gguf")

    rng = np.random.default_rng(7)
    ids = [int(x) for x in rng.integers(0, 256, N_POS)]
    expected = gguf.GGUFWriter(str(OUT / "dequant-expected.gguf"), "herd-dequant-expected")
    with tempfile.TemporaryDirectory() as tmp:
        src, cfg = make_quant_model(tmp)
        f32 = Path(tmp) / "quant-F32.gguf"
        convert(src, gguf.LlamaFileType.ALL_F32, f32)
        for q in QUANTS:
            path = OUT / f"quant-{q}.gguf"
            quantize(f32, path, q)
            ref = transformers_logits(cfg, dequantized_state_dict(path, cfg), ids)
            cpp = llamacpp_logits(path, ids)
            from safetensors.numpy import save_file
            save_file({"ids": np.array(ids, dtype=np.float32), "logits": ref, "logits_llamacpp": cpp},
                      str(OUT / f"quant-{q}.ref.safetensors"))
            seen = set()
            for t in gguf.GGUFReader(str(path)).tensors:
                kind = t.tensor_type.name
                if kind in ("F32", "F16", "BF16") or kind in seen:
                    continue
                seen.add(kind)
                rows = [int(x) for x in reversed(t.shape)]
                w = gguf.quants.dequantize(t.data, t.tensor_type).reshape(rows)[:DEQUANT_ROWS]
                expected.add_tensor(f"{path.name}/{t.name}", np.ascontiguousarray(w, dtype=np.float32))
            print(q, "types", sorted(seen), "max |transformers - llama.cpp|", float(np.abs(ref - cpp).max()))
    expected.write_header_to_file()
    expected.write_kv_data_to_file()
    expected.write_tensors_to_file()
    expected.close()


if __name__ == "__main__":
    main()
