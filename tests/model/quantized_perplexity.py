#!/usr/bin/env python3
"""The perplexity of herd quantize's formats on the real small model, end to end from its GGUF file,
beside transformers' on the same files (docs/quantized.md, "Quality on a real model").

usage: quantized_perplexity.py HERD [--work DIR] [--json]

1. The GGUF (SmolLM2-135M-Instruct Q4_1, smollm2.py finds it) becomes Hugging Face directories in
   BF16 and F32 through transformers' own GGUF loader (hf_side.py). No BF16 original is used: the
   "BF16" model is the Q4_1 file's weights dequantized, then rounded to BF16.
2. herd quantize makes fp8, awq and gptq of the BF16 one (group size 64: the model's widths, 576
   and 1536, are not multiples of 128). The GGUF types are refused: they need Llama 3's tokenizer.
3. `herd perplexity --device cpu` on each, with the fast kernels and with --exact, plus the BF16
   model with an FP8 KV cache. Without BOS: transformers' tokenizer.json for this model adds none,
   and herd takes BOS from that file's post-processor, so --bos is refused there.
4. transformers on the same directories: as it loads them, and (where its weights are dense) the
   same weights in an f32 model, the arithmetic of herd's --exact.

Checks: the F32 directory's --exact perplexity equals the GGUF's (the same weights), and every
transformers f32 figure, and its AWQ and GPTQ ones, lie within 1% of herd's --exact.

Interpreters: $HERD_REF_PYTHON (default ~/.cache/herd/ref-venv/bin/python) needs torch,
transformers, gguf, accelerate and compressed-tensors; $HERD_GPTQ_PYTHON (default the same) loads
the AWQ and GPTQ files and needs gptqmodel and optimum too, else those rows say what is missing.
Exits 77 (ctest's skip) when the model or the reference interpreter is absent. Takes minutes; not
in ctest.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from smollm2 import SKIP, present

HERE = Path(__file__).resolve().parent
TEXT = HERE.parent / "data" / "smollm2" / "lighthouses.txt"
HOME_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "herd"
REF_PYTHON = os.environ.get("HERD_REF_PYTHON", str(HOME_CACHE / "ref-venv" / "bin" / "python"))
GPTQ_PYTHON = os.environ.get("HERD_GPTQ_PYTHON", REF_PYTHON)
FORMATS = [("fp8", []), ("awq", ["--group-size", "64"]), ("gptq", ["--group-size", "64"])]


def ref_ready():
    probe = "import torch, transformers, gguf, accelerate, compressed_tensors"
    if Path(REF_PYTHON).exists() and subprocess.run([REF_PYTHON, "-c", probe], capture_output=True).returncode == 0:
        return True
    print(f"skipped: {REF_PYTHON} needs torch, transformers, gguf, accelerate and compressed-tensors "
          "(set HERD_REF_PYTHON)")
    return False


def hf_side(python, *args):
    out = subprocess.run([python, str(HERE / "hf_side.py"), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"hf_side.py {' '.join(map(str, args))} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # gptqmodel prints banners before it


def weight_bytes(path):
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.glob("*.safetensors"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("herd")
    p.add_argument("--work", help="keep the models here (default: a temporary directory, removed)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = p.parse_args()
    gguf = present()
    if not gguf or not ref_ready():
        return SKIP
    tmp = tempfile.TemporaryDirectory(prefix="herd-qppl-")
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)

    def perplexity(model, *flags):
        out = subprocess.run([args.herd, "perplexity", "-m", str(model), "-f", str(TEXT), "--json", "--device", "cpu",
                              *flags], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["perplexity"]

    models = {"Q4_1 GGUF": Path(gguf)}
    for dtype in ("bf16", "f32"):
        models[dtype.upper()] = work / f"smollm2-{dtype}"
        if not models[dtype.upper()].exists():
            hf_side(REF_PYTHON, "from-gguf", gguf, models[dtype.upper()], dtype)
    for fmt, flags in FORMATS:
        models[fmt.upper()] = work / f"smollm2-{fmt}"
        if not models[fmt.upper()].exists():
            subprocess.run([args.herd, "quantize", "-m", models["BF16"], "-o", models[fmt.upper()], "--type", fmt,
                            *flags], check=True, capture_output=True)
    refused = subprocess.run([args.herd, "quantize", "-m", models["BF16"], "-o", work / "smollm2.q8_0.gguf",
                              "--type", "q8_0"], capture_output=True, text=True)
    assert refused.returncode == 2, "a GGUF of a tokenizer that is not Llama 3's must be refused"
    print(f"herd quantize --type q8_0: {refused.stderr.strip()}")

    rows = []
    for name, model in models.items():
        row = {"format": name, "bytes": weight_bytes(model), "exact": perplexity(model, "--exact")}
        if name != "F32":  # F32 is only the proof that the conversion kept the GGUF's weights
            row["fast"] = perplexity(model)
        if name == "BF16":
            row["kv_fp8"] = perplexity(model, "--kv-dtype", "fp8")
        if name not in ("Q4_1 GGUF", "F32"):
            row["transformers"] = hf_side(GPTQ_PYTHON if name in ("AWQ", "GPTQ") else REF_PYTHON,
                                          "perplexity", model, TEXT)
        rows.append(row)
        print(f"{name}: {json.dumps(row)}", file=sys.stderr)
    by = {r["format"]: r for r in rows}
    assert by["F32"]["exact"] == by["Q4_1 GGUF"]["exact"], "the F32 directory must hold the GGUF's weights"
    table(rows, by["BF16"]["exact"])
    for r in rows:
        hf = r.get("transformers", {})
        for got in (hf.get("f32"), hf.get("loaded") if r["format"] in ("AWQ", "GPTQ") else None):
            if got:
                assert abs(got["perplexity"] / r["exact"] - 1) < 0.01, f"{r['format']}: transformers and herd disagree"
    if args.json:
        print(json.dumps(rows))
    return 0


def table(rows, base):
    print("| format | weight bytes | herd | herd --exact | vs BF16 (--exact) | transformers as loaded "
          "| transformers, its weights in f32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        hf = r.get("transformers", {})
        loaded = hf.get("error") or (f"{hf['loaded']['perplexity']:.3f} ({hf['dtype']}, {hf['linear']})" if hf else "")
        f32 = f"{hf['f32']['perplexity']:.3f}" if "f32" in hf else ""
        fast = f"{r['fast']:.3f}" if "fast" in r else ""
        if "kv_fp8" in r:
            fast += f"; FP8 KV cache {r['kv_fp8']:.3f}"
        print(f"| {r['format']} | {r['bytes']:,} | {fast} | {r['exact']:.3f} | {100 * (r['exact'] / base - 1):+.2f}% "
              f"| {loaded} | {f32} |")


if __name__ == "__main__":
    sys.exit(main())
