#!/usr/bin/env python3
"""Tokenizer benchmark: herd vs tiktoken, single thread, same tokenizer.model, same pattern.

Assembles a >= 10 MB corpus from text available offline (see docs/benchmarks.md), runs
bench-tokenizer (herd) and tiktoken on it in one run, checks that both give the same ids,
and prints MB/s for each and the ratio. tiktoken is a peer for this script only; CI does not
need it.

    python3 bench/tokenizer/run.py --bin build/bench/tokenizer/bench-tokenizer
"""
import argparse
import gzip
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def read_text(path):
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def gather(paths, budget):
    """Text of the files in sorted order until `budget` bytes."""
    parts, size = [], 0
    for p in sorted(paths):
        if size >= budget:
            break
        if not p.is_file() or p.stat().st_size > 2_000_000:
            continue
        text = read_text(p)
        if text:
            parts.append(text)
            size += len(text.encode())
    return "".join(parts), size


def build_corpus():
    """~2 MB multilingual vector strings, ~5 MB Debian docs and licences, ~4 MB source code."""
    vectors = [json.loads(line)["text"] for line in
               (ROOT / "tests/data/tokenizer/vectors.jsonl").read_text(encoding="utf-8").splitlines() if line]
    block = "\n".join(vectors) + "\n"
    multilingual = block * (2_000_000 // len(block.encode()) + 1)
    docs_paths = list(Path("/usr/share/common-licenses").iterdir())
    docs_paths += [p for p in Path("/usr/share/doc").rglob("*")
                   if p.name.startswith(("copyright", "README", "changelog", "NEWS")) or p.suffix in (".txt", ".md")]
    docs, _ = gather(docs_paths, 5_000_000)
    code_paths = list(Path("/usr/lib/python3.11").glob("*.py")) + list(Path("/usr/include").rglob("*.h"))
    code_paths += list((ROOT / "src").rglob("*.cpp")) + list((ROOT / "src").rglob("*.h"))
    code, _ = gather(code_paths, 4_000_000)
    return multilingual + docs + code


def tiktoken_encoder(model):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    return tiktoken.Encoding("llama3", pat_str=PATTERN, mergeable_ranks=load_tiktoken_bpe(str(model)),
                             special_tokens={})


def summary(rates):
    return {"mb_s_median": statistics.median(rates), "mb_s_min": min(rates), "mb_s_max": max(rates)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "build/bench/tokenizer/bench-tokenizer"))
    ap.add_argument("--model", default=str(ROOT / "tests/data/tokenizer/tokenizer.model"))
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()

    text = build_corpus()
    data = text.encode()
    enc = tiktoken_encoder(args.model)
    herd_rates, tk_rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_bytes(data)
        ids_file = Path(tmp) / "ids.txt"
        # Alternate the two, one encode each per round, so that load on a shared machine
        # falls on both alike.
        for _ in range(args.reps):
            out = subprocess.run([args.bin, args.model, str(corpus), "1", "--ids", str(ids_file)],
                                 check=True, capture_output=True, text=True).stdout
            herd_rates.append(json.loads(out)["mb_s_median"])
            t0 = time.perf_counter()
            tk_ids = enc.encode_ordinary(text)
            tk_rates.append(len(data) / 1e6 / (time.perf_counter() - t0))
        herd_ids = [int(x) for x in ids_file.read_text().split()]
    herd, tk = summary(herd_rates), summary(tk_rates)
    ratios = [h / t for h, t in zip(herd_rates, tk_rates)]

    print(f"corpus: {len(data) / 1e6:.1f} MB, sha256 {hashlib.sha256(data).hexdigest()[:16]}, "
          f"{len(tk_ids)} tokens; ids identical: {herd_ids == tk_ids}")
    for name, r in (("herd", herd), ("tiktoken", tk)):
        print(f"{name:9s} {r['mb_s_median']:7.2f} MB/s median  (min {r['mb_s_min']:.2f}, max {r['mb_s_max']:.2f}, "
              f"{args.reps} runs)")
    print(f"ratio herd/tiktoken: {herd['mb_s_median'] / tk['mb_s_median']:.2f}x of medians; per round "
          f"median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})")
    return 0 if herd_ids == tk_ids else 1


if __name__ == "__main__":
    sys.exit(main())
