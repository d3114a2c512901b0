#!/usr/bin/env python3
"""herd plan as users run it: presets, a model directory, lists, and refusals (docs/cli.md,
docs/distributed.md "Memory planner"). Every expected number is worked out here: weights from Meta's
parameter counts or the checkpoint's own header, KV bytes per token by hand, the fit from those.

Usage: test_plan.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import os
import struct
import subprocess
import sys

HERD, DATA = sys.argv[1], sys.argv[2]
GIB = 1 << 30
results = []


def run(*args):
    p = subprocess.run([HERD, *args], capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def plans(*args):
    rc, out, err = run("plan", *args, "--json")
    assert rc == 0, (args, err)
    return json.loads(out)["plans"]


def expect_bad_input(name, args, must_mention):
    rc, out, err = run("plan", *args)
    lines = err.splitlines()
    check(name, rc == 2 and out == "" and len(lines) == 1 and lines[0].startswith("herd: error:")
          and must_mention in lines[0], f"rc={rc} stderr={err!r} stdout={out[:200]!r}")


def sequences(kv_space, kv_per_token, ctx, block=16):
    """Full sequences of ctx tokens in kv_space bytes: whole blocks, less the null block."""
    if kv_space <= 0:
        return 0
    return max(0, kv_space // (kv_per_token * block) - 1) // -(-ctx // block)


# --- Presets against Meta's parameter counts (model cards) and KV bytes by hand.
PARAMS = {"llama-3.1-8b": 8030261248, "llama-3.1-70b": 70553706496, "llama-3.1-405b": 405853388800}
LAYERS = {"llama-3.1-8b": 32, "llama-3.1-70b": 80, "llama-3.1-405b": 126}
for name, n in PARAMS.items():
    p = plans("-m", name, "--gpu-memory", "4TiB", "--dtype", "bf16")[0]
    check(f"{name}: BF16 weights are 2 bytes a parameter", p["weight_bytes"] == 2 * n, p["weight_bytes"])
    kv = 2 * LAYERS[name] * 8 * 128 * 2
    check(f"{name}: KV per token", p["kv_bytes_per_token"] == kv and p["context"] == 131072, p)

# 405B FP8 on 8 x 80 GB: the matrices one byte each, embedding/LM head/norms BF16, one KV head a rank.
embd, norms = 128256 * 16384, (2 * 126 + 1) * 16384
weights = (PARAMS["llama-3.1-405b"] - 2 * embd - norms) // 8 + 2 * embd * 2 // 8 + norms * 2
p = plans("-m", "llama-3.1-405b", "--gpus", "8", "--gpu-memory", "80GiB", "--dtype", "fp8")[0]
budget = int(0.9 * 80 * GIB)
check("405B FP8 8x80GiB: weights per rank", p["weight_bytes"] == weights, (p["weight_bytes"], weights))
check("405B FP8 8x80GiB: one KV head per rank", p["kv_heads_per_rank"] == 1 and p["kv_bytes_per_token"] == 2 * 126 * 128 * 2, p)
check("405B FP8 8x80GiB: 2 or 3 full 128K sequences",
      p["fits"] and 2 <= p["sequences"] <= 3
      and p["sequences"] == sequences(budget - weights - p["workspace_bytes"], 64512, 131072), p["verdict"])
check("405B FP8: the rows sum", p["kv_cache_bytes"] == p["budget_bytes"] - p["weight_bytes"] - p["workspace_bytes"]
      and p["budget_bytes"] == budget, p)

rc, out, err = run("plan", "-m", "llama-3.1-405b", "--gpus", "8", "--gpu-memory", "80GiB", "--dtype", "fp8")
check("405B text: the arithmetic rows and the verdict", rc == 0 and err == ""
      and "2 x 126 layers x 1 KV head x 128 x 2 B (BF16)" in out
      and "[16032, 16384] BF16" in out  # the embedding's vocabulary rows, 128256 / 8
      and out.rstrip("\n").splitlines()[-1].startswith("fits: "), out)

# 405B BF16: not on 8 x 80 GB (101.5 GB of weights a card), but on 16.
p8, p16 = plans("-m", "llama-3.1-405b", "--gpus", "8,16", "--gpu-memory", "80GiB", "--dtype", "bf16")
check("405B BF16 8x80GiB does not fit", not p8["fits"] and p8["weight_bytes"] > 80 * GIB
      and p8["verdict"].startswith("does not fit: the weights"), p8["verdict"])
check("405B BF16 16x80GiB fits", p16["fits"] and p16["tensor_parallel"] == 16 and p16["sequences"] >= 2, p16["verdict"])

# 70B BF16: TP 1 never; TP 2 holds a short context only; exit 0 either way.
rc, out, err = run("plan", "-m", "llama-3.1-70b", "--gpu-memory", "80GiB")
check("70B on one 80GiB card: a plan that does not fit is exit 0", rc == 0 and "does not fit" in out, out + err)
p = plans("-m", "llama-3.1-70b", "--gpus", "2", "--gpu-memory", "80GiB")[0]
check("70B BF16 TP 2: under 128K of KV cache, the verdict says how much fits",
      not p["fits"] and 0 < p["kv_tokens"] < 131072 and f"at most {p['kv_tokens']} tokens" in p["verdict"], p["verdict"])
p = plans("-m", "llama-3.1-70b", "--gpus", "2", "--gpu-memory", "80GiB", "--ctx", "8192")[0]
check("70B BF16 TP 2 at 8K context fits", p["fits"] and p["context"] == 8192, p["verdict"])

# Replicas: 8 GPUs at TP 2 are four copies of the model.
p = plans("-m", "llama-3.1-8b", "--gpus", "8", "--tp", "2", "--gpu-memory", "80GiB")[0]
check("--gpus 8 --tp 2: four replicas", p["tensor_parallel"] == 2 and p["replicas"] == 4 and p["gpus"] == 8, p)

# --- Sizes: KB/MB/GB/TB are powers of 1000, K/M/G/T and KiB.. powers of 1024.
ps = plans("-m", "llama-3.1-8b", "--gpu-memory", "141GB,80G,80GiB,0.5TB")
check("sizes", [q["gpu_memory"] for q in ps] == [141 * 10**9, 80 * GIB, 80 * GIB, 5 * 10**11], [q["gpu_memory"] for q in ps])

# --- Lists: one Markdown row per combination, models x types x memories x GPU counts.
rc, out, err = run("plan", "-m", "llama-3.1-8b", "-m", "llama-3.1-70b", "--gpus", "1,2,4", "--gpu-memory", "80GiB,141GiB",
                   "--dtype", "bf16,fp8")
rows = [l for l in out.splitlines() if l.startswith("| llama")]
check("lists: a Markdown table of 24 rows", rc == 0 and len(rows) == 24 and out.startswith("| model |")
      and rows[0].startswith("| llama-3.1-8b | BF16 | 1 x 80GiB | 1 |") and rows[-1].startswith("| llama-3.1-70b | FP8 | 4 x 141GiB | 4 |"),
      out)
check("lists: 70B BF16 on one 80GiB card is a no", "| llama-3.1-70b | BF16 | 1 x 80GiB | 1 |" in out
      and [l for l in rows if "| llama-3.1-70b | BF16 | 1 x 80GiB |" in l][0].endswith("| no |"), out)

# --- A model directory: the checkpoint's tensors by its own header, split as Megatron does.
MODEL = os.path.join(DATA, "models", "gqa8x4-hd16-untied-llama3")  # 8 query heads over 4 KV heads
with open(os.path.join(MODEL, "model.safetensors"), "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
tensors = {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"}
for tp in (1, 2, 4, 8):
    expect = sum(b if "norm" in k else b // min(tp, 4) if ("k_proj" in k or "v_proj" in k) else b // tp
                 for k, b in tensors.items())
    p = plans("-m", MODEL, "--gpus", str(tp), "--gpu-memory", "1GiB")[0]
    check(f"model directory at TP {tp}: weights per rank from the file", p["weight_bytes"] == expect
          and p["weight_dtype"] == "as stored: BF16" and p["context"] == 2048
          and p["kv_bytes_per_token"] == 2 * 2 * max(1, 4 // tp) * 16 * 2, (p["weight_bytes"], expect, p["kv_bytes_per_token"]))
p = plans("-m", MODEL, "--gpu-memory", "1GiB", "--dtype", "f32", "--kv-dtype", "f32")[0]
check("model directory as F32", p["weight_bytes"] == 2 * sum(tensors.values()) and p["kv_dtype"] == "F32"
      and p["kv_bytes_per_token"] == 2 * 2 * 4 * 16 * 4, p)

# --- Refusals: exit 2, one line, naming the flag or the field.
BASE = ["-m", "llama-3.1-8b"]
expect_bad_input("--gpu-memory lower-case unit", BASE + ["--gpu-memory", "80gb"], "--gpu-memory: '80gb' is not a size")
expect_bad_input("--gpu-memory trailing junk", BASE + ["--gpu-memory", "80GiBs"], "--gpu-memory")
expect_bad_input("--gpu-memory with a space", BASE + ["--gpu-memory", "80 GiB"], "--gpu-memory")
expect_bad_input("--gpu-memory zero", BASE + ["--gpu-memory", "0GiB"], "--gpu-memory")
expect_bad_input("--gpu-memory empty item", BASE + ["--gpu-memory", "80GiB,"], "--gpu-memory")
expect_bad_input("--gpu-memory missing", BASE, "--gpu-memory")
expect_bad_input("-m missing", ["--gpu-memory", "80GiB"], "--model")
expect_bad_input("--gpus 0", BASE + ["--gpu-memory", "80GiB", "--gpus", "0"], "--gpus: '0'")
expect_bad_input("--gpus not a number", BASE + ["--gpu-memory", "80GiB", "--gpus", "2,x"], "--gpus: 'x'")
expect_bad_input("--gpus not a multiple of --tp", BASE + ["--gpu-memory", "80GiB", "--gpus", "4", "--tp", "3"],
                 "--gpus 4 is not a multiple of --tp 3")
expect_bad_input("--tp that cannot split the model", BASE + ["--gpu-memory", "80GiB", "--gpus", "3"],
                 "tensor-parallel degree 3")
expect_bad_input("--dtype unknown", BASE + ["--gpu-memory", "80GiB", "--dtype", "int4"], "--dtype: 'int4'")
expect_bad_input("--kv-dtype unknown", BASE + ["--gpu-memory", "80GiB", "--kv-dtype", "q8"], "--kv-dtype")
expect_bad_input("--ctx past the model's", BASE + ["--gpu-memory", "80GiB", "--ctx", "131073"], "context (131073 tokens)")
expect_bad_input("--ctx 0", BASE + ["--gpu-memory", "80GiB", "--ctx", "0"], "--ctx")
expect_bad_input("--block-size 24", BASE + ["--gpu-memory", "80GiB", "--block-size", "24"], "--block-size: '24'")
expect_bad_input("--gpu-util 0", BASE + ["--gpu-memory", "80GiB", "--gpu-util", "0"], "--gpu-util")
expect_bad_input("--gpu-util 1.5", BASE + ["--gpu-memory", "80GiB", "--gpu-util", "1.5"], "--gpu-util")
expect_bad_input("--max-batch-tokens 0", BASE + ["--gpu-memory", "80GiB", "--max-batch-tokens", "0"], "--max-batch-tokens")
expect_bad_input("a misspelt flag", BASE + ["--gpu-memory", "80GiB", "--kv-dtyp", "bf16"], "did you mean --kv-dtype?")
expect_bad_input("a model that is not there", ["-m", os.path.join(DATA, "models", "no-such-model"), "--gpu-memory", "80GiB"],
                 "no-such-model")

n_fail = results.count(False)
print(f"{len(results) - n_fail} passed, {n_fail} failed")
sys.exit(1 if n_fail else 0)
