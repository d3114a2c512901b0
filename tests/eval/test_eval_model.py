#!/usr/bin/env python3
"""A real small model scores above chance on 20 easy multiple-choice questions (examples/eval/easy-mc.jsonl,
4 choices each, chance 25%): the one-sided binomial test of its correct count against p0 = 0.25 gives
p < 0.05 (9 or more of 20). The model is SmolLM2-135M-Instruct ($HERD_SMOLLM2, or where scripts/fetch-model
puts it; tests/model/smollm2.py finds it); without it the test is skipped (exit 77).

Usage: test_eval_model.py HERD_BINARY TASK_FILE. Standard library only.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import smollm2  # noqa: E402

HERD, TASKS = sys.argv[1], sys.argv[2]
model = smollm2.present()
if not model:
    sys.exit(smollm2.SKIP)


def binomial_tail(n, k, p0):
    """P(X >= k) for X ~ Binomial(n, p0): the one-sided p-value of k successes."""
    return sum(math.comb(n, i) * p0 ** i * (1 - p0) ** (n - i) for i in range(k, n + 1))


with tempfile.TemporaryDirectory(prefix="herd-eval-model-") as tmp:
    out, summary = os.path.join(tmp, "out.jsonl"), os.path.join(tmp, "summary.json")
    p = subprocess.run([HERD, "eval", "-m", model, "--tasks", TASKS, "--out", out, "--summary", summary],
                       capture_output=True, text=True, timeout=540)
    print(p.stdout, end="")
    if p.returncode != 0:
        print(p.stderr)
        sys.exit(1)
    records = [json.loads(l) for l in open(out, encoding="utf-8")]
    n = len(records)
    correct = sum(int(r["metrics"]["acc"]) for r in records)
    correct_norm = sum(int(r["metrics"]["acc_norm"]) for r in records)
    pvalue = binomial_tail(n, correct, 0.25)
    print(f"{os.path.basename(model)}: acc {correct}/{n}, acc_norm {correct_norm}/{n}; "
          f"one-sided binomial p = {pvalue:.3g} (H0: p = 0.25)")
    for r in records:
        if not r["correct"]:
            print(f"  wrong: {r['id']} {r['prompt']!r} -> {r['choices'][r['pred']]!r} (want {r['choices'][r['answer']]!r})")
    ok = n == 20 and pvalue < 0.05
    print("ok" if ok else "FAIL: not above chance at p < 0.05")
    sys.exit(0 if ok else 1)
