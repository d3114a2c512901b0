#!/usr/bin/env python3
"""Reference numbers for SmolLM2-135M-Instruct (Q4_1 GGUF), the real model of herd's tests.

Run offline on a developer machine with llama-cpp-python (pip builds llama.cpp from source),
torch, transformers and the llama.cpp tree of make_gguf_fixtures.py (for gguf-py):

  pip install llama-cpp-python numpy torch transformers
  python3 tests/reference/make_smollm2_reference.py "$(scripts/fetch-model)" LLAMA_CPP_TREE

CI only reads what it writes, tests/data/smollm2/reference.json:
  tokenize       strings -> llama.cpp's ids (no BOS, special-token text kept as text)
  logits         on BOS + the first 255 tokens of lighthouses.txt (256 positions):
                   top1[p], top[p]   llama.cpp's most likely next token, and its 32 most likely
                                     tokens as [id, logit] pairs
                   gap[p]            llama.cpp's top-1 minus top-2 logit
                   exact_top1[p], exact[p]
                                     the same from transformers run on the weights gguf-py's numpy
                                     dequantizers recover from the file (exact[p] holds the logits
                                     of llama.cpp's 32 ids): the exact function of the file
  perplexity     lighthouses.txt in one window: BOS + every token, every token after BOS scored;
                 {"perplexity", "nll", "n_tokens"}

llama.cpp runs with an F32 KV cache, as herd's CPU backend keeps it. Its matrix products still
round activations to 8 bits against the Q4_1 weights (ggml's vec_dot_type), which moves its logits
~0.6 (median per position) from the exact ones; the positions where its top-1 differs from the
exact top-1 are near-ties, which is why the test compares top-1 where the decision is clear.

The same method runs on both sides: the ids are llama.cpp's tokenization, the logits come from
one pass over the whole sequence, and the log-softmax is taken in float64 here.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from llama_cpp import Llama
from transformers import LlamaConfig

DATA = Path(__file__).resolve().parent.parent / "data" / "smollm2"
TEXT = DATA / "lighthouses.txt"
N_LOGITS = 256
TOP = 32

TOKENIZE = [
    "Hello world",
    "The capital of France is Paris.",
    "In 2024, 1234567 people paid $3.50 each.",
    "  leading spaces and trailing  ",
    "tabs\tand\nnewlines\n\n\nend",
    "ünïcödé, 日本語のテキスト, emoji 🦙🚀",
    "don't I'll we've they're",
    "<|im_start|>user\nhi<|im_end|>",
    "def f(x):\n    return x ** 2  # square",
    "3.14159 and 1e-10 and 0x1F",
]


def exact_logits(path, ids):
    """transformers on the dequantized weights of the file (SmolLM2-135M's hyperparameters)."""
    from make_gguf_fixtures import dequantized_state_dict, transformers_logits
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, tie_word_embeddings=True,
                      rope_parameters={"rope_type": "default", "rope_theta": 100000.0})
    return transformers_logits(cfg, dequantized_state_dict(path, cfg), ids).astype(np.float64)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path = sys.argv[1]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_gguf_fixtures import setup_llama_cpp
    setup_llama_cpp(sys.argv[2])
    text = TEXT.read_text(encoding="utf-8")
    llm = Llama(model_path=path, n_ctx=4096, n_batch=4096, n_ubatch=4096, logits_all=True, verbose=False,
                n_threads=2, seed=0, type_k=0, type_v=0)  # ggml type 0: F32 KV cache
    bos = llm.token_bos()
    out = {"model": Path(path).name, "bos": bos, "text": TEXT.name}

    out["tokenize"] = [{"text": s, "ids": llm.tokenize(s.encode(), add_bos=False, special=False)} for s in TOKENIZE]

    ids = llm.tokenize(text.encode(), add_bos=False, special=False)
    seq = [bos] + ids
    assert len(seq) >= 1500, len(seq)
    llm.reset()
    llm.eval(seq)
    scores = np.array(llm.scores[: len(seq)], dtype=np.float64)

    exact = exact_logits(path, seq[:N_LOGITS])
    lg = {"ids": seq[:N_LOGITS], "top1": [], "top": [], "gap": [], "exact_top1": [], "exact": []}
    for p in range(N_LOGITS):
        row = scores[p]
        order = np.argsort(-row, kind="stable")[:TOP]
        lg["top1"].append(int(order[0]))
        lg["top"].append([[int(i), float(row[i])] for i in order])
        lg["gap"].append(float(row[order[0]] - row[order[1]]))
        lg["exact_top1"].append(int(np.argmax(exact[p])))
        lg["exact"].append([float(exact[p][i]) for i in order])
    out["logits"] = lg
    agree = sum(a == b for a, b in zip(lg["top1"], lg["exact_top1"]))
    print("llama.cpp vs exact: top-1 agreement", agree, "/", N_LOGITS, "; max diff over the top 32",
          max(abs(t[1] - e) for tp, ep in zip(lg["top"], lg["exact"]) for t, e in zip(tp, ep)))

    nll = 0.0
    for p in range(len(seq) - 1):
        row = scores[p]
        m = row.max()
        lse = m + math.log(np.exp(row - m).sum())
        nll -= row[seq[p + 1]] - lse
    n = len(seq) - 1
    out["perplexity"] = {"perplexity": math.exp(nll / n), "nll": nll, "n_tokens": n}

    (DATA / "reference.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("tokens", len(seq), "perplexity", out["perplexity"]["perplexity"])


if __name__ == "__main__":
    main()
