#!/usr/bin/env python3
"""The transformers side of quantized_perplexity.py, run under an interpreter that has torch and
transformers (the caller picks it). Prints one JSON object on stdout.

  hf_side.py from-gguf GGUF OUT_DIR bf16|f32   GGUF -> Hugging Face directory (needs gguf, accelerate)
  hf_side.py perplexity MODEL_DIR TEXT          perplexity of TEXT as transformers loads MODEL_DIR

Perplexity is scored as `herd perplexity` scores it without BOS: the text tokenized with no special
tokens, one forward pass, every token after the first scored.
"""
import copy
import json
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def from_gguf(gguf, out, dtype):
    from pathlib import Path
    from transformers import GgufConfig

    path = Path(gguf)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    # dequantize=True: a dense model. transformers refuses to save a model loaded from GGUF even
    # then, so its weights move into a plain model built from the same config.
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    plain = dense_copy(model, getattr(torch, {"bf16": "bfloat16", "f32": "float32"}[dtype]))
    plain.save_pretrained(out)
    tok.save_pretrained(out)
    return {"out": out, "dtype": dtype}


def dense_copy(model, dtype):
    """A plain LlamaForCausalLM of `dtype` holding `model`'s (already dense) weights."""
    cfg = copy.deepcopy(model.config)
    cfg.__dict__.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    state = {k: v.to(dtype) for k, v in model.state_dict().items() if not k.endswith(("_scale", "_zero_point"))}
    missing, unexpected = plain.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise SystemExit(f"weights do not fit a plain model: missing {missing}, unexpected {unexpected}")
    return plain


def score(model, ids):
    with torch.no_grad():
        logits = model(ids).logits.float()
    lp = torch.log_softmax(logits[0, :-1], -1).gather(1, ids[0, 1:, None])
    nll = -lp.sum().item()
    n = ids.shape[1] - 1
    return {"n_tokens": n, "nll": nll, "perplexity": math.exp(nll / n)}


def perplexity(model_dir, text_path):
    text = open(text_path, encoding="utf-8").read()
    ids = AutoTokenizer.from_pretrained(model_dir)(text, add_special_tokens=False, return_tensors="pt").input_ids
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    except Exception as e:  # the format's packages missing, or refusing this machine
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    out = {"loaded": score(model, ids), "dtype": str(model.dtype).replace("torch.", ""),
           "linear": type(model.model.layers[0].self_attn.q_proj).__name__}
    # Where the loaded projections are dense (BF16, or FP8 that compressed-tensors decompressed on
    # the first forward), the same weights in an f32 model: the arithmetic of herd's --exact, so
    # the two differ only by what the formats' readers put in the weights.
    projections = [m for name, m in model.named_modules() if name.endswith("_proj")]
    if all(isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.is_floating_point()
           and m.weight.element_size() >= 2 for m in projections):
        out["f32"] = score(dense_copy(model, torch.float32), ids)
    return out


def main():
    mode, *args = sys.argv[1:]
    result = from_gguf(*args) if mode == "from-gguf" else perplexity(*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
