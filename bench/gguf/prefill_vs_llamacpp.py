#!/usr/bin/env python3
"""Prefill throughput on a GGUF file: `herd perplexity` against llama.cpp (llama-cpp-python) on the
same text, the same thread count and one window, alternating runs. Prints tokens/s per run and the
median ratio. Needs llama-cpp-python (pip; not needed by the tests).

usage: prefill_vs_llamacpp.py HERD MODEL.gguf TEXT [--reps 3] [--threads 2]
"""
import argparse
import json
import statistics
import subprocess
import time

from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("herd")
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    llm = Llama(model_path=a.model, n_ctx=4096, n_batch=512, n_ubatch=512, logits_all=True, verbose=False,
                n_threads=a.threads, type_k=0, type_v=0)
    ids = [llm.token_bos()] + llm.tokenize(open(a.text, "rb").read(), add_bos=False, special=False)
    herd, cpp = [], []
    for _ in range(a.reps):
        t = time.perf_counter()
        out = subprocess.run([a.herd, "perplexity", "-m", a.model, "-f", a.text, "--json", "--device", "cpu",
                              "--threads", str(a.threads)], capture_output=True, text=True, check=True)
        herd.append(json.loads(out.stdout)["n_tokens"] / (time.perf_counter() - t))
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        cpp.append((len(ids) - 1) / (time.perf_counter() - t))
    fmt = lambda v: f"median {statistics.median(v):.1f} tok/s (min {min(v):.1f}, max {max(v):.1f})"
    print(f"{len(ids)} tokens, {a.threads} threads, {a.reps} runs each")
    print("herd (load + tokenize + prefill):", fmt(herd))
    print("llama.cpp (prefill only):        ", fmt(cpp))
    print(f"herd / llama.cpp: {statistics.median(herd) / statistics.median(cpp):.3f}")


if __name__ == "__main__":
    main()
