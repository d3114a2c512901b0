#!/usr/bin/env python3
"""One model over several herd processes, as torchrun or mpirun would start them: every process runs
the same command line, WORLD_SIZE/RANK/MASTER_ADDR/MASTER_PORT make each one rank, rank 0 prints.
Checks that 2 and 4 CPU processes give what one process gives (also from Meta's .pth files, which each
process reads only its slices of) (greedy tokens identical, logits within
1e-5 of the largest), and that every way a group can go wrong ends each process within a bounded time
with one clear line: a rank that never connects, rank 0 that never starts, disagreeing --tp, world size
or model, a rank killed mid-generation (on either side), and malformed launcher variables.

Usage: test_process_group.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERD, DATA = sys.argv[1], sys.argv[2]
results = []
CPU = ["--device", "cpu", "--exact", "-t", "1"]


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(rank, world, port, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), HERD_TP_TIMEOUT="20")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start(args, rank, world, port, **extra):
    return subprocess.Popen([HERD, *args], env=env_for(rank, world, port, **extra), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def group(args, world, per_rank_args=None, timeout=120, **extra):
    """Runs one command line as `world` ranks; returns [(rc, stdout, stderr, seconds)] by rank."""
    port = free_port()
    t0 = time.monotonic()
    procs = [start((per_rank_args or {}).get(r, args), r, world, port, **extra) for r in range(world)]
    out = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
        out.append((p.returncode, o, e.decode("utf-8", "replace"), time.monotonic() - t0))
    return out


def make_model(tmp, name, layers, hidden, seed):
    cfg = os.path.join(tmp, name + ".json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": hidden,
                   "intermediate_size": 2 * hidden, "num_hidden_layers": layers, "num_attention_heads": 8,
                   "num_key_value_heads": 4, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                   "rope_theta": 500000.0, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}, f)
    model = os.path.join(tmp, name)
    p = subprocess.run([HERD, "make-model", "--config", cfg, "-o", model, "--seed", str(seed)], capture_output=True)
    assert p.returncode == 0, p.stderr
    shutil.copy(os.path.join(DATA, "tokenizer", "tokenizer.model"), os.path.join(model, "tokenizer.model"))
    return model


def one_line_error(r, *words):
    rc, out, err, _ = r
    return rc != 0 and err.count("\n") == 1 and all(w in err for w in words)


tmp = tempfile.mkdtemp(prefix="herd-pg-")
try:
    model = make_model(tmp, "small", 2, 64, 11)
    other = make_model(tmp, "other", 3, 64, 12)
    prompt = "a lighthouse keeper wrote down every ship that passed the northern cape in winter " * 40

    gen_args = ["generate", "-m", model, *CPU, "-p", prompt, "-n", "12", "--temp", "0", "--json"]
    p = subprocess.run([HERD, *gen_args], capture_output=True, timeout=120)
    want = json.loads(p.stdout)["samples"][0]["ids"] if p.returncode == 0 else p.stderr
    for world in (2, 4):
        rs = group(gen_args, world)
        got = json.loads(rs[0][1])["samples"][0]["ids"] if rs[0][0] == 0 else rs[0][2]
        check(f"generate as {world} processes gives one process's tokens (rank 0 prints, the others exit 0 silently)",
              got == want and all(r[0] == 0 and r[1] == b"" for r in rs[1:]), f"{got} vs {want}; {[r[2] for r in rs]}")

    ids = ",".join(str(i * 7919 % 128256) for i in range(48))
    logit_args = ["logits", "-m", model, *CPU, "--ids", ids, "--all"]
    p = subprocess.run([HERD, *logit_args], capture_output=True, timeout=120)
    one = [x for row in json.loads(p.stdout)["logits"] for x in row]
    rs = group(logit_args, 4)
    ok = rs[0][0] == 0
    if ok:
        four = [x for row in json.loads(rs[0][1])["logits"] for x in row]
        ok = len(four) == len(one) and max(abs(a - b) for a, b in zip(one, four)) <= 1e-5 * max(abs(x) for x in one)
    check("logits as 4 processes equal one process within 1e-5", ok, rs[0][2])

    # Meta's model-parallel files: each process copies only its rank's slices out of them.
    pth_ids = ",".join(str(i * 37 % 256) for i in range(32))
    for mp in (1, 2, 4):
        pth = os.path.join(DATA, "models", f"gqa8x4-hd16-untied-llama3-meta-pth-mp{mp}")
        args = ["logits", "-m", pth, *CPU, "--ids", pth_ids, "--all"]
        p = subprocess.run([HERD, *args], capture_output=True, timeout=120)
        whole = [x for row in json.loads(p.stdout)["logits"] for x in row] if p.returncode == 0 else []
        for world in (2, 4):
            rs = group(args, world)
            ok = rs[0][0] == 0 and bool(whole)
            if ok:
                split = [x for row in json.loads(rs[0][1])["logits"] for x in row]
                ok = len(split) == len(whole) and \
                    max(abs(a - b) for a, b in zip(whole, split)) <= 1e-5 * max(abs(x) for x in whole)
            check(f"Meta .pth at model-parallel degree {mp} as {world} processes equals one process", ok,
                  [r[2][-300:] for r in rs])

    # GGUF (quantized, interleaved q/k rows each process permutes for its heads only) and Meta's
    # safetensors layout.
    for model_path in (os.path.join(DATA, "gguf", "quant-Q8_0.gguf"),
                       os.path.join(DATA, "models", "gqa4-hd32-untied-llama3-meta")):
        args = ["logits", "-m", model_path, *CPU, "--ids", pth_ids, "--all"]
        p = subprocess.run([HERD, *args], capture_output=True, timeout=120)
        whole = [x for row in json.loads(p.stdout)["logits"] for x in row] if p.returncode == 0 else []
        rs = group(args, 2)
        ok = rs[0][0] == 0 and bool(whole)
        if ok:
            split = [x for row in json.loads(rs[0][1])["logits"] for x in row]
            ok = len(split) == len(whole) and \
                max(abs(a - b) for a, b in zip(whole, split)) <= 1e-5 * max(abs(x) for x in whole)
        check(f"{os.path.basename(model_path)} as 2 processes equals one process", ok, [r[2][-300:] for r in rs])

    # chat on rank 0's terminal (stdin); the followers read nothing.
    port = free_port()
    procs = [subprocess.Popen([HERD, "chat", "-m", model, *CPU, "--temp", "0", "-n", "6"], env=env_for(r, 2, port),
                              stdin=subprocess.PIPE if r == 0 else subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for r in range(2)]
    o0, e0 = procs[0].communicate(b"hello there\nand again\n", timeout=120)
    o1, e1 = procs[1].communicate(timeout=60)
    solo = subprocess.run([HERD, "chat", "-m", model, *CPU, "--temp", "0", "-n", "6"], input=b"hello there\nand again\n",
                          capture_output=True, timeout=120)
    check("chat (piped) as 2 processes replies as one process does", procs[0].returncode == 0 and o0 == solo.stdout
          and procs[1].returncode == 0, f"{o0!r} vs {solo.stdout!r}; {e0[-300:]!r} {e1[-300:]!r}")

    # --- what goes wrong ---
    short = ["generate", "-m", model, *CPU, "-p", "hi", "-n", "2"]
    port = free_port()
    t0 = time.monotonic()
    p = subprocess.run([HERD, *short], env=env_for(0, 3, port, HERD_TP_TIMEOUT=2), capture_output=True, timeout=60)
    r = (p.returncode, p.stdout, p.stderr.decode(), time.monotonic() - t0)
    check("ranks that never connect: rank 0 names them and exits 2 after HERD_TP_TIMEOUT",
          one_line_error(r, "rank 1, 2 did not connect", "within 2 s") and r[0] == 2 and r[3] < 20, r)

    t0 = time.monotonic()
    p = subprocess.run([HERD, *short], env=env_for(1, 2, free_port(), HERD_TP_TIMEOUT=2), capture_output=True,
                       timeout=60)
    r = (p.returncode, p.stdout, p.stderr.decode(), time.monotonic() - t0)
    check("rank 0 never starts: rank 1 says where it looked and exits 2",
          one_line_error(r, "rank 0 did not answer at 127.0.0.1:") and r[0] == 2 and r[3] < 20, r)

    rs = group(short, 2, per_rank_args={0: short + ["--tp", "4"]})
    check("--tp 4 under a launcher of 2 ranks: one line, exit 2", one_line_error(rs[0], "--tp 4", "started 2 ranks")
          and rs[0][0] == 2 and rs[1][0] != 0, [r[2] for r in rs])

    rs = group(short, 2, per_rank_args={1: ["generate", "-m", other, *CPU, "-p", "hi", "-n", "2"]})
    check("a rank that loads another model: both stop, naming the difference",
          one_line_error(rs[0], "rank 1 runs a different model") and rs[0][0] == 2 and rs[1][0] != 0
          and "different model" in rs[1][2], [r[2] for r in rs])

    port = free_port()
    procs = [start(short, 0, 2, port), start(short, 1, 3, port)]
    outs = [p.communicate(timeout=60) for p in procs]
    check("ranks started with different world sizes: both stop",
          procs[0].returncode == 2 and "world of 3 ranks" in outs[0][1].decode() and procs[1].returncode != 0,
          [o[1] for o in outs])

    # A rank killed mid-generation: the other side stops with one line, soon.
    big = make_model(tmp, "big", 6, 256, 13)
    long_gen = ["generate", "-m", big, *CPU, "-p", "hi", "-n", "4000", "--temp", "0"]
    for victim in (1, 0):
        port = free_port()
        procs = [start(long_gen, r, 2, port) for r in range(2)]
        time.sleep(2.5)
        procs[victim].send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        survivor = procs[1 - victim]
        try:
            _, err = survivor.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            survivor.kill()
            _, err = survivor.communicate()
        procs[victim].wait()
        err = err.decode("utf-8", "replace")
        lines = [l for l in err.splitlines() if "error" in l]
        check(f"rank {victim} killed mid-generation: rank {1 - victim} stops within seconds, saying rank {victim} hung up",
              survivor.returncode not in (0, None) and time.monotonic() - t0 < 20 and len(lines) == 1
              and f"rank {victim} hung up" in lines[0], (survivor.returncode, err[-400:]))

    for env, words in (({"WORLD_SIZE": "two"}, "WORLD_SIZE"), ({"RANK": "5"}, "RANK"),
                       ({"MASTER_PORT": "99999"}, "MASTER_PORT")):
        p = subprocess.run([HERD, *short], env=env_for(0, 2, free_port(), **env), capture_output=True, timeout=60)
        r = (p.returncode, p.stdout, p.stderr.decode(), 0)
        check(f"launcher variable {words} with a bad value: one line naming it, exit 2",
              one_line_error(r, words) and r[0] == 2, r)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

n_fail = results.count(False)
print(f"{len(results) - n_fail} passed, {n_fail} failed")
sys.exit(1 if n_fail else 0)
