#!/usr/bin/env python3
"""Items per second of `herd eval` on a 200-item loglikelihood file, one item at a time against 32 in
flight (docs/benchmarks.md, "herd eval throughput").

  python3 bench/eval/throughput.py --herd build/tools/herd/herd [--model MODEL] [--reps 3] [--concurrency 1,32]
                                   [--device cpu] [--threads N]

The task file is made here: 200 multiple-choice items of 4 choices, contexts of 8 to 30 tokens. Without
--model the model is a random one made by `herd make-model` with Llama 3's vocabulary and
tokenizer (tests/data/tokenizer/tokenizer.model) and a small body (hidden 128, 2 layers), so that the
LM head over 128,256 ids dominates as it does in small real models. Each repetition runs every
concurrency once, alternating, so that load from other jobs falls on all alike. Prints a table and,
with --json, the rows.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
WORDS = ["river", "stone", "green", "seven", "quiet", "window", "bread", "north", "music", "paper", "light", "garden"]


def task_file(path, n_items):
    with open(path, "w") as f:
        for i in range(n_items):
            filler = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(i % 12))
            context = f"Item {i}. {filler} The word that comes next is"
            choices = [WORDS[(i + k * 5) % len(WORDS)] for k in range(4)]
            f.write(json.dumps({"id": f"b{i}", "context": context, "choices": choices, "answer": i % 4}) + "\n")


def random_model(herd, tmp):
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 128,
                   "intermediate_size": 384, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                   "bos_token_id": 128000, "eos_token_id": [128001, 128009]}, f)
    model = os.path.join(tmp, "model")
    subprocess.run([herd, "make-model", "--config", cfg, "-o", model, "--dtype", "bf16"], check=True, capture_output=True)
    shutil.copy(os.path.join(ROOT, "tests", "data", "tokenizer", "tokenizer.model"), model)
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--herd", required=True)
    p.add_argument("--model", help="a real model instead of the random one")
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--concurrency", default="1,32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", default="0")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    tmp = tempfile.mkdtemp(prefix="herd-bench-eval-")
    try:
        model = args.model or random_model(args.herd, tmp)
        tasks = os.path.join(tmp, "tasks.jsonl")
        task_file(tasks, args.items)
        runs = {c: [] for c in levels}
        scores = {}
        for rep in range(args.reps):
            for c in levels:
                summary = os.path.join(tmp, "summary.json")
                out = os.path.join(tmp, f"out-{c}.jsonl")
                if os.path.exists(out):
                    os.remove(out)  # --out would resume: every rep runs every item
                subprocess.run([args.herd, "eval", "-m", model, "--tasks", tasks, "--concurrency", str(c), "--out", out,
                                "--summary", summary, "--device", args.device, "--threads", args.threads],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                s = json.load(open(summary))
                runs[c].append(s)
                with open(out) as f:
                    scores.setdefault(c, [json.loads(l)["logprobs"] for l in f])
                print(f"rep {rep + 1}: concurrency {c}: {s['items_per_s']:.2f} items/s", file=sys.stderr)
        same = all(scores[c] == scores[levels[0]] for c in levels)
        rows = []
        for c in levels:
            ips = [s["items_per_s"] for s in runs[c]]
            tps = [s["tokens_per_s"] for s in runs[c]]
            rows.append({"concurrency": c, "items_per_s": statistics.median(ips), "items_per_s_min": min(ips),
                         "items_per_s_max": max(ips), "tokens_per_s": statistics.median(tps),
                         "prompt_tokens": runs[c][0]["prompt_tokens"], "cached_prompt_tokens": runs[c][0]["cached_prompt_tokens"],
                         "reps": len(ips)})
        if args.json:
            print(json.dumps({"model": args.model or "random (hidden 128, 2 layers, Llama 3 vocabulary)",
                              "items": args.items, "same_scores": same, "rows": rows}))
            return
        print(f"{args.items} loglikelihood items, 4 choices each; model: {args.model or 'random, hidden 128, 2 layers, Llama 3 vocabulary'}")
        print("| concurrency | items/s median (min–max) | tok/s median | prompt tokens | from prefix cache |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['concurrency']} | {r['items_per_s']:.2f} ({r['items_per_s_min']:.2f}–{r['items_per_s_max']:.2f}) | "
                  f"{r['tokens_per_s']:.0f} | {r['prompt_tokens']} | {r['cached_prompt_tokens']} |")
        base = rows[0]["items_per_s"]
        for r in rows[1:]:
            print(f"concurrency {r['concurrency']} / {rows[0]['concurrency']}: {r['items_per_s'] / base:.2f}x")
        print(f"loglikelihoods identical at every concurrency: {'yes' if same else 'NO'}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
