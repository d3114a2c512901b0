#!/usr/bin/env python3
"""What tensor parallelism costs on the CPU: `herd bench` on one model as one rank, as ranks that are
threads of one process (--tp), and as ranks that are processes (WORLD_SIZE/RANK over loopback TCP),
with the same CPU threads in all, alternating the configurations. Prints a markdown table of median
prefill and decode rates and their spread over the rounds, and the ratio to one rank.

Usage: compare.py HERD_BINARY [--preset models/llama-3.2-1b.json] [--layers 4] [--tp 2] [--threads 2]
                  [--rounds 3] [-p 128] [-n 32] [-b 1,8]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(herd, model, args, tp, threads, processes):
    cmd = [herd, "bench", "-m", model, "--device", "cpu", "-p", str(args.p), "-n", str(args.n), "-b", args.b,
           "--reps", "1", "--json"]
    if not processes:
        out = subprocess.run(cmd + ["-t", str(threads), "--tp", str(tp)], capture_output=True, check=True).stdout
        return json.loads(out)
    port = free_port()
    env = {k: v for k, v in os.environ.items()}
    procs = []
    for r in range(tp):
        env.update(WORLD_SIZE=str(tp), RANK=str(r), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(cmd + ["-t", str(max(1, threads // tp))], env=dict(env),
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    outs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "a rank failed"
    return json.loads(outs[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("herd")
    ap.add_argument("--preset", default=os.path.join(ROOT, "models", "llama-3.2-1b.json"))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-b", default="1,8")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="herd-tp-bench-")
    try:
        model = os.path.join(tmp, "model")
        subprocess.run([args.herd, "make-model", "--config", args.preset, "-o", model, "--layers", str(args.layers)],
                       check=True, capture_output=True)
        configs = [("1 rank", 1, False), (f"{args.tp} ranks, threads", args.tp, False),
                   (f"{args.tp} ranks, processes", args.tp, True)]
        rates = {}  # (config, test) -> [tokens/s per round]
        for rnd in range(args.rounds):
            order = configs if rnd % 2 == 0 else configs[::-1]
            for name, tp, processes in order:
                for row in bench(args.herd, model, args, tp, args.threads, processes):
                    rates.setdefault((name, f"{row['test']} b{row['batch']}"), []).append(row["tok_s"])
        tests = sorted({t for _, t in rates}, key=lambda t: (t[:2], t))
        print(f"| test | " + " | ".join(c[0] for c in configs) + " |")
        print("|---" * (len(configs) + 1) + "|")
        for t in tests:
            base = statistics.median(rates[("1 rank", t)])
            cells = []
            for name, _, _ in configs:
                v = rates[(name, t)]
                med = statistics.median(v)
                cells.append(f"{med:.1f} t/s ({min(v):.1f}-{max(v):.1f}), {med / base:.2f}x")
            print(f"| {t} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
