#!/usr/bin/env python3
"""`herd perplexity` on the real small model is within 1% of llama.cpp's on the same text, and
within 2% of itself with an FP8 KV cache.

usage: check_perplexity.py HERD REFERENCE_JSON TEXT
Exits 77 (ctest's skip) when the model is absent (smollm2.py).
"""
import json
import subprocess
import sys

from smollm2 import SKIP, present


def main():
    herd, ref_path, text = sys.argv[1:4]
    model = present()
    if not model:
        return SKIP
    ref = json.load(open(ref_path, encoding="utf-8"))["perplexity"]

    def perplexity(*flags):
        out = subprocess.run([herd, "perplexity", "-m", model, "-f", text, "--json", "--device", "cpu", *flags],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    # The reference scores BOS + the text; the file says add_bos_token false, so by default herd
    # starts with the text's first token, as llama.cpp's perplexity tool does, and scores one fewer.
    assert perplexity()["n_tokens"] == ref["n_tokens"] - 1, "without --bos the first text token is context"
    got = perplexity("--bos")
    rel = abs(got["perplexity"] - ref["perplexity"]) / ref["perplexity"]
    print(f"herd {got['perplexity']:.4f} over {got['n_tokens']} tokens, llama.cpp {ref['perplexity']:.4f} "
          f"over {ref['n_tokens']}: {100 * rel:.2f}% apart")
    assert got["n_tokens"] == ref["n_tokens"], "the text must tokenize to as many tokens as llama.cpp's"
    assert rel < 0.01, "more than 1% from llama.cpp"
    # An FP8 KV cache (E4M3, 4 significant bits of each K and V value) costs little: measured +0.4%
    # on this text; within 2% of the f16 cache's.
    fp8 = perplexity("--bos", "--kv-dtype", "fp8")["perplexity"]
    print(f"with an FP8 KV cache {fp8:.4f}: {100 * (fp8 / got['perplexity'] - 1):+.2f}%")
    assert abs(fp8 / got["perplexity"] - 1) < 0.02, "the FP8 KV cache moves perplexity by more than 2%"
    return 0


if __name__ == "__main__":
    sys.exit(main())
