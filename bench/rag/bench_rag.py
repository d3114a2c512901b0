#!/usr/bin/env python3
"""Document index speed: `herd index build` over a directory of text files (default /usr/share/doc, the first
N regular files copied into a scratch tree so that runs compare), then query latency of `herd index search`.

usage: bench_rag.py HERD [--src DIR] [--files N] [--queries N]
Prints MB/s for a fresh build, the time of a no-change rebuild, and search latency (median, p90) per query,
process start included.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("herd")
    ap.add_argument("--src", default="/usr/share/doc")
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=50)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="herd-bench-rag-")
    try:
        tree = os.path.join(tmp, "docs")
        n = 0
        for root, dirs, files in os.walk(a.src):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(root, f)
                if n >= a.files or not os.path.isfile(p) or os.path.islink(p) or f.endswith(".gz"):
                    continue
                dst = os.path.join(tree, os.path.relpath(p, a.src))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(p, dst)
                n += 1
        index = os.path.join(tmp, "docs.db")
        t = time.time()
        p = subprocess.run([a.herd, "index", "build", tree, "-o", index], capture_output=True, text=True, check=True)
        build_s = time.time() - t
        print(p.stdout.strip().splitlines()[0])
        print(p.stdout.strip().splitlines()[-1])
        t = time.time()
        subprocess.run([a.herd, "index", "build", tree, "-o", index], capture_output=True, check=True)
        print(f"no-change rebuild: {time.time() - t:.2f} s")
        # Queries: word pairs from the indexed text itself.
        words = re.findall(r"[a-z]{5,}", open(os.path.join(tree, os.listdir(tree)[0])).read()
                           if os.path.isfile(os.path.join(tree, os.listdir(tree)[0])) else "")
        words = words or ["license", "copyright", "version", "install", "software", "program"]
        lat = []
        for i in range(a.queries):
            q = f"{words[i % len(words)]} {words[(i * 7 + 3) % len(words)]}"
            t = time.time()
            subprocess.run([a.herd, "index", "search", index, q, "-k", "5"], capture_output=True, check=True)
            lat.append(time.time() - t)
        lat.sort()
        print(f"{n} files; build wall {build_s:.2f} s; index {os.path.getsize(index) / 1e6:.1f} MB")
        print(f"search (herd process, k=5): median {statistics.median(lat) * 1e3:.1f} ms, "
              f"p90 {lat[int(len(lat) * 0.9)] * 1e3:.1f} ms over {len(lat)} queries")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
