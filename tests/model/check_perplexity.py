#!/usr/bin/env python3
"""`herd perplexity` on the real small model is within 1% of llama.cpp's on the same text.

usage: check_perplexity.py HERD REFERENCE_JSON TEXT
Exits 77 (ctest's skip) when the model is absent (tests/model/model-path.h has the same rule).
"""
import json
import os
import subprocess
import sys


def model_path():
    if os.environ.get("HERD_SMOLLM2"):
        return os.environ["HERD_SMOLLM2"]
    cache = os.environ.get("HERD_MODEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "herd")
    return os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    herd, ref_path, text = sys.argv[1:4]
    model = model_path()
    if not os.path.exists(model):
        print(f"skipped: {model} is absent; run scripts/fetch-model (or set HERD_SMOLLM2)")
        return 77
    ref = json.load(open(ref_path, encoding="utf-8"))["perplexity"]
    out = subprocess.run([herd, "perplexity", "-m", model, "-f", text, "--json", "--device", "cpu"],
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    rel = abs(got["perplexity"] - ref["perplexity"]) / ref["perplexity"]
    print(f"herd {got['perplexity']:.4f} over {got['n_tokens']} tokens, llama.cpp {ref['perplexity']:.4f} "
          f"over {ref['n_tokens']}: {100 * rel:.2f}% apart")
    assert got["n_tokens"] == ref["n_tokens"], "the text must tokenize to as many tokens as llama.cpp's"
    assert rel < 0.01, "more than 1% from llama.cpp"
    return 0


if __name__ == "__main__":
    sys.exit(main())
