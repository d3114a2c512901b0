#!/usr/bin/env python3
"""herd quantize on the command line (docs/cli.md): outputs that herd loads, progress on stderr and
nothing on stdout, and every bad input refused with exit 2 and one line that names it, leaving
nothing behind.

Usage: test_quantize_cli.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERD, DATA = sys.argv[1], sys.argv[2]
MODEL = os.path.join(DATA, "models", "gqa4-hd32-untied-llama3")
REF = os.path.join(DATA, "quantize-ref")
results = []


def run(*args):
    p = subprocess.run([HERD, *map(str, args)], capture_output=True, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def expect_bad_input(name, args, must_mention):
    rc, out, err = run(*args)
    lines = err.splitlines()
    check(name, rc == 2 and len(lines) == 1 and lines[0].startswith("herd: error:") and must_mention in lines[0]
          and out == b"", f"rc={rc} stderr={err!r} stdout={out[:200]!r}")


def leftovers(d):
    return [n for n in os.listdir(d) if ".partial-" in n]


tmp = tempfile.mkdtemp(prefix="herd-quantize-cli-")
try:
    # A model with a tokenizer, for every type.
    src = os.path.join(tmp, "src")
    rc, _, err = run("make-model", "--config", os.path.join(REF, "config.json"), "-o", src)
    assert rc == 0, err
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(os.path.join(REF, f), src)

    for qtype, out, extra in (("fp8", "m-fp8", []), ("awq", "m-awq", ["--group-size", "64"]),
                              ("gptq", "m-gptq", ["--group-size", "32"]), ("q8_0", "m.q8_0.gguf", []),
                              ("q4_0", "m.q4_0.gguf", []), ("Q4_1", "m.q4_1.gguf", []),
                              ("q4_k_m", "m.q4_k_m.gguf", []), ("q5_k_m", "m.q5_k_m.gguf", []),
                              ("q6_k", "m.q6_k.gguf", [])):
        dst = os.path.join(tmp, out)
        rc, stdout, err = run("quantize", "-m", src, "-o", dst, "--type", qtype, *extra)
        check(f"{qtype}: exit 0, nothing on stdout, progress and a summary on stderr",
              rc == 0 and stdout == b"" and "quantize [" in err and f"herd: wrote {dst}" in err, f"rc={rc} {err!r}")
        rc, stdout, err = run("logits", "-m", dst, "--ids", "1,2,3")
        check(f"{qtype}: herd loads the output", rc == 0 and len(json.loads(stdout)["logits"][0]) == 320, err)
    with open(os.path.join(tmp, "m-gptq", "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    check("--group-size reaches the GPTQ config", qc["group_size"] == 32 and qc["quant_method"] == "gptq", qc)

    # Refusals.
    existing = os.path.join(tmp, "m-fp8")
    before = sorted(os.listdir(existing))
    expect_bad_input("an existing output directory is never overwritten",
                     ["quantize", "-m", src, "-o", existing, "--type", "fp8"], "already exists")
    check("the existing output is untouched", sorted(os.listdir(existing)) == before)
    existing_file = os.path.join(tmp, "m.q8_0.gguf")
    size = os.path.getsize(existing_file)
    expect_bad_input("an existing output file is never overwritten",
                     ["quantize", "-m", src, "-o", existing_file, "--type", "q8_0"], "already exists")
    check("the existing file is untouched", os.path.getsize(existing_file) == size)
    expect_bad_input("an unknown type", ["quantize", "-m", src, "-o", os.path.join(tmp, "x"), "--type", "int3"],
                     "'int3' is not one of fp8, awq, gptq, q8_0, q4_0, q4_1, q4_k_m, q5_k_m, q6_k")
    expect_bad_input("a missing input", ["quantize", "-m", os.path.join(tmp, "nope"), "-o", os.path.join(tmp, "x"),
                                         "--type", "fp8"], "no such file or directory")
    expect_bad_input("an already quantized input",
                     ["quantize", "-m", existing, "-o", os.path.join(tmp, "x"), "--type", "gptq"], "already quantized")
    expect_bad_input("a GGUF file as input", ["quantize", "-m", existing_file, "-o", os.path.join(tmp, "x"),
                                              "--type", "fp8"], "not a model directory")
    expect_bad_input("a group size that is not a multiple of 32",
                     ["quantize", "-m", src, "-o", os.path.join(tmp, "x"), "--type", "awq", "--group-size", "100"],
                     "--group-size")
    expect_bad_input("a group size that does not divide a layer",
                     ["quantize", "-m", src, "-o", os.path.join(tmp, "x"), "--type", "awq", "--group-size", "96"],
                     "not whole groups of 96")
    expect_bad_input("a group size with a GGUF type",
                     ["quantize", "-m", src, "-o", os.path.join(tmp, "x"), "--type", "q4_0", "--group-size", "64"],
                     "--group-size applies to awq and gptq")
    expect_bad_input("an output in a directory that does not exist",
                     ["quantize", "-m", src, "-o", os.path.join(tmp, "no", "x"), "--type", "fp8"], "does not exist")
    bare = os.path.join(tmp, "bare")
    shutil.copytree(MODEL, bare)
    expect_bad_input("GGUF without a tokenizer.json", ["quantize", "-m", bare, "-o", os.path.join(tmp, "x.gguf"),
                                                       "--type", "q8_0"], "tokenizer.json")
    rc, _, err = run("quantize", "-m", src)
    check("a missing flag: exit 2 naming it", rc == 2 and "--out is required" in err, err)
    check("no output and no partial files left by any refusal",
          not os.path.exists(os.path.join(tmp, "x")) and not os.path.exists(os.path.join(tmp, "x.gguf"))
          and not leftovers(tmp), os.listdir(tmp))

    rc, out, _ = run("quantize", "--help")
    text = out.decode()
    check("--help documents every flag and type",
          rc == 0 and all(s in text for s in ("--model", "--out", "--type", "--group-size", "--threads", "fp8", "awq",
                                                "gptq", "q8_0", "q4_0", "q4_1", "q4_k_m", "q5_k_m", "q6_k",
                                                "never overwritten")),
          text)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
