#!/usr/bin/env python3
"""examples/eval/convert.py on the tiny sample inputs in examples/eval/samples/: its output is the example
task files checked in beside it, answers map as the datasets mean them, and a HumanEval item's test
program (as herd eval assembles it) passes the canonical solution and fails a wrong one.

Usage: test_convert.py PATH/TO/convert.py. Standard library only.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

CONVERT = sys.argv[1]
EXAMPLES = os.path.dirname(os.path.abspath(CONVERT))
SAMPLES = os.path.join(EXAMPLES, "samples")
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def convert(*args):
    p = subprocess.run([sys.executable, CONVERT, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(l) for l in p.stdout.splitlines()]


def example(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return [json.loads(l) for l in f]


def passes(item, answer):
    """Runs the item's test as herd eval does: prefix + answer + suffix on the command's stdin."""
    t = item["test"]
    p = subprocess.run(t["command"], shell=True, input=t.get("prefix", "") + answer + t["suffix"], text=True,
                       capture_output=True, timeout=30)
    return p.returncode == 0


s = lambda *p: os.path.join(SAMPLES, *p)
mmlu = convert("mmlu", s("mmlu", "test", "astronomy_test.csv"), s("mmlu", "test", "high_school_mathematics_test.csv"),
               "--dev-dir", s("mmlu", "dev"))
check("mmlu: the example file", mmlu == example("mmlu-5shot.jsonl"))
check("mmlu: 5 shots, the letter's index, the subject", mmlu[1]["answer"] == 2 and mmlu[1]["subject"] == "astronomy"
      and mmlu[1]["context"].count("\nAnswer: ") == 5 and mmlu[1]["context"].endswith("D. Neptune\nAnswer:")
      and mmlu[0]["context"].startswith("The following are multiple choice questions (with answers) about astronomy.\n\n")
      and mmlu[2]["context"].startswith("The following are multiple choice questions (with answers) about high school mathematics.")
      and mmlu[0]["choices"] == ["A", "B", "C", "D"], mmlu[1])
zero = convert("mmlu", s("mmlu", "test", "astronomy_test.csv"))
check("mmlu: zero-shot without --dev-dir", zero[0]["context"].count("Answer:") == 1)

arc = convert("arc", s("arc.jsonl"))
check("arc: the example file", arc == example("arc-challenge.jsonl"))
check("arc: labels A-D, 1-4 and the Hugging Face layout", [a["answer"] for a in arc] == [1, 0, 2]
      and arc[2]["choices"] == ["gas", "liquid", "solid", "plasma"] and arc[0]["context"].startswith("Question: ")
      and arc[0]["context"].endswith("\nAnswer:"), arc)

gsm = convert("gsm8k", s("gsm8k-test.jsonl"), "--fewshot", s("gsm8k-train.jsonl"), "--samples", "4",
              "--temperature", "0.7")
check("gsm8k: the example file", gsm == example("gsm8k-cot.jsonl"))
check("gsm8k: final answers without separators, worked examples without <<>>",
      [g["answer"] for g in gsm] == ["30", "12", "1000"] and gsm[0]["n"] == 4 and len(gsm[0]["fewshot"]) == 2
      and gsm[0]["fewshot"][0]["assistant"] == "Tom has 3 * 4 = 12 pencils.\nThe final answer is 12"
      and gsm[0]["extract"] == "last_number", gsm[0])

tmp = tempfile.mkdtemp(prefix="herd-convert-")
try:
    gz = os.path.join(tmp, "HumanEval.jsonl.gz")
    with open(s("humaneval.jsonl"), "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    he = convert("humaneval", gz, "--samples", "5", "--temperature", "0.8")
    check("humaneval: the example file, from the .gz", he == example("humaneval.jsonl"))
    problems = [json.loads(l) for l in open(s("humaneval.jsonl"))]
    check("humaneval: the canonical solutions pass", all(passes(i, p["canonical_solution"]) for i, p in zip(he, problems)))
    check("humaneval: a wrong solution fails", not passes(he[0], "    return a - b\n"))
    check("humaneval: pass@1 of 5 samples", he[0]["n"] == 5 and he[0]["pass_at"] == [1])
    chat = convert("humaneval", s("humaneval.jsonl"), "--chat")
    fn = "def add(a, b):\n    return a + b\n"
    check("humaneval --chat: the reply's function is tested", chat[0]["extract"] == "regex"
          and passes(chat[0], fn) and not passes(chat[0], fn.replace("+", "*")))
finally:
    shutil.rmtree(tmp)

p = subprocess.run([sys.executable, CONVERT, "gsm8k", s("gsm8k-test.jsonl"), "--shots", "8"], capture_output=True, text=True)
check("gsm8k: --shots without --fewshot is an error", p.returncode != 0 and "--fewshot" in p.stderr, p.stderr)

n_fail = results.count(False)
print(f"{len(results) - n_fail} passed, {n_fail} failed")
sys.exit(1 if n_fail else 0)
