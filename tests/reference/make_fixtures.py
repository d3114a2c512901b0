#!/usr/bin/env python3
"""Reference fixtures for herd's forward pass, made with Hugging Face transformers.

Run offline on a developer machine (pip install torch transformers safetensors); CI only reads
the committed output in tests/data/models/. Arguments name the models to (re)write; none: all.

For each tiny random Llama it writes tests/data/models/NAME/:
  config.json            as transformers saves it (v5 layout), or rewritten in the v4 layout
  model.safetensors      BF16 weights (the FP32 variant is the same values, upcast exactly)
and tests/data/reference/NAME.safetensors (logits_f32, logits_bf16: F32 [n_positions, n_vocab],
HF at every position) and NAME.json (input ids, greedy continuations (16 tokens) and each greedy step's
top-2 logit gap, for the FP32 and BF16 runs),
plus one model re-exported in Meta's layout (params.json, Meta names, interleaved q/k rows).
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
OUT = os.path.join(DATA, "models")
REF = os.path.join(DATA, "reference")
N_POS = 64
N_GREEDY = 16
VOCAB = 256

# name -> (config overrides, config.json layout)
MODELS = {
    # GQA 4:1, head_dim 32 (= hidden / heads, as Meta's layout requires), untied, Llama 3.1's own
    # scaling (original context 8192) that params.json implies: also re-exported in Meta's layout.
    "gqa4-hd32-untied-llama3": (dict(num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                                     tie_word_embeddings=False, rope_scaling=8192), "v5"),
    # MHA 1:1, head_dim 128, tied embeddings, plain RoPE with theta 10000.
    "mha-hd128-tied": (dict(num_attention_heads=2, num_key_value_heads=2, head_dim=128,
                            tie_word_embeddings=True, rope_theta=10000.0), "v4"),
    # GQA 4:1, head_dim 128, tied, llama3 scaling with an original context of 32, so that the
    # unscaled, smoothed and divided bands all act within 64 positions; v4 layout, older "type" key.
    "gqa4-hd128-tied-llama3": (dict(num_attention_heads=4, num_key_value_heads=1, head_dim=128,
                                    tie_word_embeddings=True, rope_scaling=32), "v4-type"),
    # MHA 1:1, head_dim 64, untied, plain RoPE at theta 500000.
    "mha-hd64-untied": (dict(num_attention_heads=2, num_key_value_heads=2, head_dim=64,
                             tie_word_embeddings=False), "v5"),
    # Eight query heads over 2, 4 and 8 KV heads (head_dim 16 = hidden / heads): models that split over
    # 2, 4 and 8 tensor-parallel ranks, with the KV heads split, and past their count replicated.
    "gqa8x2-hd16-untied-llama3": (dict(num_attention_heads=8, num_key_value_heads=2, head_dim=16,
                                       tie_word_embeddings=False, rope_scaling=32), "v5"),
    "gqa8x4-hd16-untied-llama3": (dict(num_attention_heads=8, num_key_value_heads=4, head_dim=16,
                                       tie_word_embeddings=False, rope_scaling=8192), "v5"),
    "mha8-hd16-tied": (dict(num_attention_heads=8, num_key_value_heads=8, head_dim=16,
                            tie_word_embeddings=True, rope_theta=10000.0), "v4"),
}
META_VARIANT = "gqa4-hd32-untied-llama3"

LLAMA3_SCALING = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0)


def make_config(over):
    over = dict(over)
    scaling = over.pop("rope_scaling", None)
    theta = over.pop("rope_theta", 500000.0)
    rope = {"rope_type": "llama3", "rope_theta": theta, **LLAMA3_SCALING,
            "original_max_position_embeddings": scaling} if scaling else \
           {"rope_type": "default", "rope_theta": theta}
    return LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=192, num_hidden_layers=2,
                       max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                       rope_parameters=rope, attn_implementation="eager", **over)


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                # A tied embedding is also the LM head: keep it small so logits stay varied.
                std = 0.1 if model.config.tie_word_embeddings else 1.0
                p.copy_(std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            # Weights are bf16-representable so that the FP32 and BF16 variants share one file.
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def greedy(model, ids):
    ids = ids.clone()
    out, gaps = [], []
    with torch.no_grad():
        for _ in range(N_GREEDY):
            last = model(ids).logits[0, -1].float()
            top2 = torch.topk(last, 2).values
            tok = int(torch.argmax(last))
            out.append(tok)
            gaps.append(float(top2[0] - top2[1]))
            ids = torch.cat([ids, torch.tensor([[tok]])], dim=1)
    return out, gaps


def rewrite_config_v4(path, use_type_key):
    """transformers 4 / published Llama 3.1 layout: top-level rope_theta and rope_scaling, torch_dtype."""
    with open(path) as f:
        c = json.load(f)
    rope = c.pop("rope_parameters")
    c["rope_theta"] = rope.pop("rope_theta")
    if rope.get("rope_type") == "llama3":
        kind = rope.pop("rope_type")
        c["rope_scaling"] = {("type" if use_type_key else "rope_type"): kind, **rope}
    else:
        c["rope_scaling"] = None
    c["torch_dtype"] = c.pop("dtype", "bfloat16")
    with open(path, "w") as f:
        json.dump(c, f, indent=2)


def meta_permute(w, n_heads):
    """HF half-split rows -> Meta interleaved rows (inverse of convert_llama_weights_to_hf.permute)."""
    rows, cols = w.shape
    return w.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def meta_state_dict(sd, cfg):
    """HF names and half-split q/k rows -> Meta names and interleaved rows (BF16, contiguous)."""
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}
    meta = {"tok_embeddings.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"],
            "output.weight": sd["lm_head.weight"]}
    names = {"input_layernorm": "attention_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
             "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
             "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
             "mlp.up_proj": "feed_forward.w3"}
    for i in range(cfg.num_hidden_layers):
        for hf, mt in names.items():
            w = sd[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                w = meta_permute(w, cfg.num_attention_heads)
            elif hf == "self_attn.k_proj":
                w = meta_permute(w, cfg.num_key_value_heads)
            meta[f"layers.{i}.{mt}.weight"] = w.contiguous()
    return meta


def meta_params(cfg):
    """params.json for a fixture model (hidden 128, intermediate 192, Llama 3.1 RoPE scaling)."""
    # llama-models' rule int(0.5 * int(2 * 4 * 128 / 3)) = 170, rounded up to a multiple of 192,
    # lands on the intermediate size.
    assert cfg.hidden_size == 128 and cfg.intermediate_size == 192
    return {"dim": cfg.hidden_size, "n_layers": cfg.num_hidden_layers, "n_heads": cfg.num_attention_heads,
            "n_kv_heads": cfg.num_key_value_heads, "vocab_size": cfg.vocab_size,
            "multiple_of": 192, "ffn_dim_multiplier": 0.5, "norm_eps": cfg.rms_norm_eps,
            "rope_theta": 500000.0, "use_scaled_rope": True}


def write_meta_variant(model, cfg, dst):
    os.makedirs(dst, exist_ok=True)
    save_file(meta_state_dict(model.state_dict(), cfg), os.path.join(dst, "consolidated.safetensors"))
    with open(os.path.join(dst, "params.json"), "w") as f:
        json.dump(meta_params(cfg), f, indent=2)


def main():
    """Writes every model, or only those named on the command line (the others' files stay as they are)."""
    only = set(sys.argv[1:])
    unknown = only - set(MODELS)
    if unknown:
        sys.exit(f"unknown model(s): {', '.join(sorted(unknown))}; known: {', '.join(MODELS)}")
    torch.manual_seed(0)
    for seed, (name, (over, layout)) in enumerate(MODELS.items()):
        if only and name not in only:
            continue
        cfg = make_config(over)
        model = LlamaForCausalLM(cfg).eval()
        randomise(model, 1000 + seed)
        dst = os.path.join(OUT, name)
        shutil.rmtree(dst, ignore_errors=True)
        model.to(torch.bfloat16).save_pretrained(dst, safe_serialization=True)
        if layout.startswith("v4"):
            rewrite_config_v4(os.path.join(dst, "config.json"), layout == "v4-type")
        if os.path.exists(os.path.join(dst, "generation_config.json")):
            os.remove(os.path.join(dst, "generation_config.json"))

        ids = torch.randint(0, VOCAB, (1, N_POS), generator=torch.Generator().manual_seed(seed))
        ref = {"input_ids": ids[0].tolist()}
        logits = {}
        for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            # Load afresh: casting a live model would also round its rotary inv_freq buffer.
            m = LlamaForCausalLM.from_pretrained(dst, dtype=dtype, attn_implementation="eager").eval()
            with torch.no_grad():
                logits[f"logits_{tag}"] = m(ids).logits[0].float().contiguous()
            ref[f"greedy_{tag}"], ref[f"greedy_gap_{tag}"] = greedy(m, ids)
        os.makedirs(REF, exist_ok=True)
        save_file(logits, os.path.join(REF, name + ".safetensors"))
        with open(os.path.join(REF, name + ".json"), "w") as f:
            json.dump(ref, f)
        if name == META_VARIANT:
            write_meta_variant(model, cfg, os.path.join(OUT, name + "-meta"))
        print(name, "max|logit|", float(logits["logits_f32"].abs().max()), "greedy", ref["greedy_f32"])
    print("transformers", __import__("transformers").__version__, "torch", torch.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
