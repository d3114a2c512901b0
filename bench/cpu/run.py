#!/usr/bin/env python3
"""herd's CPU backend against llama.cpp, side by side (docs/benchmarks.md, "CPU decode and prefill
against llama.cpp").

  python3 bench/cpu/run.py [--layers 16] [--reps 3] [--threads 2] [--tg64] [--out results.json] [--plot ratios.png]

In one run it:
  1. builds llama.cpp's llama-bench and llama-quantize from the llama.cpp tree vendored by the
     llama-cpp-python source distribution on PyPI (once; cached);
  2. makes a random-weight GGUF of Llama 3.2 1B's shape (models/llama-3.2-1b.json) in F16 with Llama 3's
     vocabulary, quantizes it with llama-quantize to Q8_0, Q4_0 and Q4_K_M, and takes the real
     SmolLM2-135M-Instruct Q4_1 file from scripts/fetch-model (all cached);
  3. measures the memory read bandwidth (bench/cpu/membw.c), before and after the benchmarks;
  4. runs `herd bench` and `llama-bench` alternately, --reps rounds, on every model with the same
     thread count: prefill of 128 tokens (pp128) and decode of 32 (tg32; tg64 with --tg64) at batch 1,
     and herd's decode of 8 sequences at once;
  5. prints a Markdown table per model, and writes --out JSON and a --plot PNG of the ratios.

Within one invocation each engine runs each test --inner times (default 2) without warm-up and keeps the
fastest run (the first one also maps the weights in, and other jobs on the machine only ever slow a run
down); the median over rounds is reported. Everything downloaded or built
goes to the scratch folder (default ~/.cache/herd; $HERD_MODEL_CACHE as for scripts/fetch-model), with the
Python packages in a virtual environment there (bench-venv).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
import bandwidth  # noqa: E402 (the modules beside this one need only the standard library)
import herd  # noqa: E402
import llamacpp  # noqa: E402
import report  # noqa: E402
from common import BenchError, log  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV_PACKAGES = ["gguf==0.19.0", "numpy==2.4.6", "matplotlib==3.11.2"]
MODELS = ["F16", "Q8_0", "Q4_0", "Q4_K_M", "SmolLM2"]
N_PROMPT = 128


def default_scratch():
    if os.environ.get("HERD_MODEL_CACHE"):
        return Path(os.environ["HERD_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "herd"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--herd", type=Path, default=ROOT / "build" / "tools" / "herd" / "herd", help="herd binary")
    ap.add_argument("--scratch", type=Path, default=default_scratch(), help="cache for builds, models, venv")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of both engines (default 2)")
    ap.add_argument("--reps", type=int, default=3, help="rounds of alternating runs (default 3)")
    ap.add_argument("--layers", type=int, default=16, help="layers of the 1B-shaped model (default 16, its own)")
    ap.add_argument("--tg64", action="store_true", help="also decode 64 tokens at batch 1")
    ap.add_argument("--batch", type=int, default=8, help="herd's batched decode: sequences at once (default 8)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list from {','.join(MODELS)}")
    ap.add_argument("--inner", type=int, default=2,
                    help="runs of each test within one invocation, the fastest kept (default 2)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--plot", type=Path, help="write a PNG bar plot of herd / llama.cpp here")
    a = ap.parse_args()
    a.models = [m for m in a.models.split(",") if m]
    bad = [m for m in a.models if m not in MODELS]
    if bad or not a.models:
        ap.error(f"--models: unknown {','.join(bad) or '(empty)'}; choose from {','.join(MODELS)}")
    for flag in ("threads", "reps", "layers", "batch", "inner"):
        if getattr(a, flag) < 1:
            ap.error(f"--{flag} must be at least 1")
    if not os.access(a.herd, os.X_OK):
        ap.error(f"--herd: {a.herd} is not an executable (build it: cmake --build build --target herd-cli)")
    return a


def ensure_venv(scratch):
    """Re-runs this script in a virtual environment in the scratch folder that has VENV_PACKAGES,
    making it first when needed."""
    venv = scratch / "bench-venv"
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    python = venv / "bin" / "python"
    stamp = venv / "herd-bench-packages.txt"
    wanted = "\n".join(VENV_PACKAGES)
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        log(f"making the Python environment {venv} ({', '.join(VENV_PACKAGES)})")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *VENV_PACKAGES], check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f"bench/cpu/run.py: error: could not make {venv} ({e}); needs python3-venv and PyPI")
        stamp.write_text(wanted)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def herd_round(args, model, gens):
    """herd's tests of one round: pp128 and decode at batch 1, then decode of args.batch sequences. The
    decode-only invocations prefill one token per sequence (herd bench always runs a prefill test first,
    and 8 x 128 tokens would take most of the round). That prefill already maps in every weight, so the
    batched decode runs once per round."""
    r = herd.bench(args.herd, model, args.threads, N_PROMPT, gens[0], [1], args.inner)
    out = {f"pp{N_PROMPT}": r[(f"pp{N_PROMPT}", 1)], f"tg{gens[0]}": r[(f"tg{gens[0]}", 1)]}
    for n in gens[1:]:
        out[f"tg{n}"] = herd.bench(args.herd, model, args.threads, 1, n, [1], args.inner)[(f"tg{n}", 1)]
    b = args.batch
    out[f"tg{gens[0]} b{b}"] = herd.bench(args.herd, model, args.threads, 1, gens[0], [b], 1)[(f"tg{gens[0]}", b)]
    return out


def hardware():
    info = {"cpus": os.cpu_count()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "Core(s) per socket", "Socket(s)", "L3 cache", "Hypervisor vendor"):
                info[k.strip()] = v.strip()
    except OSError:
        pass
    return info


def model_entries(args, tools):
    """The models to measure, made or fetched when missing, each with what the tables need."""
    import models  # needs gguf and numpy, from the virtual environment

    paths = {}
    if any(m != "SmolLM2" for m in args.models):
        made = models.llama_1b_shape(args.scratch, tools, args.layers, args.threads)
        paths.update({m: made[m] for m in args.models if m in made})
    if "SmolLM2" in args.models:
        paths["SmolLM2"] = models.smollm2()
    entries = []
    for name in args.models:
        p = paths[name]
        if name == "SmolLM2":
            title, short = "SmolLM2-135M-Instruct, Q4_1 (trained weights)", "SmolLM2 Q4_1"
        else:
            title, short = f"Llama 3.2 1B shape, {args.layers} layers, random weights, {name}", name
        entries.append({"name": name, "title": title, "short": short, "file": str(p),
                        "file_bytes": p.stat().st_size, **models.inspect(p), "rounds": []})
    return entries


def measure_rounds(args, tools, entries, gens):
    """Fills each entry's 'rounds'; returns llama-bench's description of itself and the CPU."""
    llama_row = {}
    for rnd in range(args.reps):
        for m in entries:
            # Alternate which engine goes first, so that neither always follows the other.
            order = ["herd", "llamacpp"] if rnd % 2 == 0 else ["llamacpp", "herd"]
            res = {}
            for engine in order:
                log(f"round {rnd + 1}/{args.reps}: {engine} on {m['short']}")
                if engine == "herd":
                    res["herd"] = herd_round(args, m["file"], gens)
                else:
                    res["llamacpp"], llama_row = llamacpp.bench(tools, m["file"], args.threads, N_PROMPT, gens,
                                                                args.inner)
            m["rounds"].append(res)
    return {k: llama_row.get(k) for k in ("cpu_info", "backends")}


def main():
    args = parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    ensure_venv(args.scratch)
    started = time.monotonic()
    tools = llamacpp.build(args.scratch)
    v = tools["version"]
    log(f"llama.cpp {v['llama_cpp_commit']} (llama-cpp-python {v['llama_cpp_python']}, ggml {v['ggml']})")
    entries = model_entries(args, tools)

    gens = [32, 64] if args.tg64 else [32]
    tests = [f"pp{N_PROMPT}"] + [f"tg{n}" for n in gens]
    mib = bandwidth.buffer_mib()
    bw_before = bandwidth.measure(args.scratch, args.threads, mib)
    llama_info = measure_rounds(args, tools, entries, gens)
    bw = bandwidth.summary(bw_before + bandwidth.measure(args.scratch, args.threads, mib), args.threads, mib)
    for m in entries:
        report.summarise(m, tests, args.batch, bw["gbps"])

    result = {
        "command": "python3 bench/cpu/run.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "herd_commit": herd.commit(ROOT), "herd_binary": str(args.herd), "llamacpp": {**v, **llama_info},
        "hardware": hardware(), "threads": args.threads, "reps": args.reps, "inner": args.inner,
        "bandwidth": bw, "tests": tests, "batch": args.batch, "models": entries,
        "seconds": round(time.monotonic() - started),
    }
    hw = result["hardware"]
    print(f"herd {result['herd_commit']} vs llama.cpp {v['llama_cpp_commit']} (llama-cpp-python "
          f"{v['llama_cpp_python']}), {args.threads} threads, {args.reps} rounds; "
          f"{hw.get('Model name', '?')}, {hw['cpus']} CPUs")
    print(f"memory read bandwidth: {bw['gbps']:.1f} GB/s best, {bw['gbps_median']:.1f} median ({bw['what']})\n")
    for m in entries:
        print(report.table(m, tests, args.batch) + "\n")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        log(f"wrote {args.out}")
    if args.plot:
        report.plot(entries, tests, args.plot,
                    f"herd / llama.cpp on the CPU, {args.threads} threads (herd {result['herd_commit']})")
        log(f"wrote {args.plot}")
    log(f"done in {result['seconds']} s")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(f"bench/cpu/run.py: error: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
