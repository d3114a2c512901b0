#!/usr/bin/env python3
"""herd serve against llama.cpp's llama-server on the same GGUF, side by side in one run: both
servers up at once, idle in turn, each concurrency level measured on one then the other
(alternating which goes first). Prints a markdown table and the JSON rows.

Usage: compare.py HERD_BINARY LLAMA_SERVER_BINARY MODEL.gguf [--threads 2] [--concurrency 1,8,32]
                  [--requests-per-client 4] [--max-tokens 64]
Run it with a Python that has the openai package (tests/serve/venv.sh prints one).
"""
import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("herd")
    ap.add_argument("llama_server")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    slots = max(levels)
    hp, lp = free_port(), free_port()
    herd = subprocess.Popen([a.herd, "serve", "-m", a.model, "--device", "cpu", "-t", str(a.threads), "--port", str(hp),
                             "--parallel", str(slots), "--alias", "model"], stderr=subprocess.DEVNULL)
    # llama-server divides its context among the slots: 512 tokens each holds prompt and reply.
    llama = subprocess.Popen([a.llama_server, "-m", a.model, "-t", str(a.threads), "-tb", str(a.threads),
                              "--host", "127.0.0.1", "--port", str(lp), "--parallel", str(slots),
                              "-c", str(512 * slots), "--alias", "model"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        servers = {"herd": f"http://127.0.0.1:{hp}", "llama.cpp": f"http://127.0.0.1:{lp}"}
        for name, url in servers.items():
            wait_ready(url, herd if name == "herd" else llama)
            asyncio.run(loadgen.warm(url + "/v1", "model"))
        for i, c in enumerate(levels):
            order = list(servers) if i % 2 == 0 else list(reversed(servers))
            for name in order:
                r = asyncio.run(loadgen.run_level(servers[name] + "/v1", "model", c, a.requests_per_client, a.max_tokens))
                r["server"] = name
                rows.append(r)
                print(r, file=sys.stderr, flush=True)
    finally:
        for p in (herd, llama):
            p.terminate()
            p.wait(30)
    print("| server | concurrency | requests | req/s | output tok/s | TTFT p50 / p90 / p99 (ms) | ITL p50 / p90 / p99 (ms) |")
    print("|---|---:|---:|---:|---:|---|---|")
    for c in levels:
        for r in (x for x in rows if x["concurrency"] == c):
            print(f"| {r['server']} | {c} | {r['requests']} | {r['req_s']:.2f} | {r['out_tok_s']:.1f} | "
                  f"{r['ttft_p50_ms']:.0f} / {r['ttft_p90_ms']:.0f} / {r['ttft_p99_ms']:.0f} | "
                  f"{r['itl_p50_ms']:.1f} / {r['itl_p90_ms']:.1f} / {r['itl_p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
