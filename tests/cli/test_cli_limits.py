#!/usr/bin/env python3
"""The command line's limits and ergonomics (docs/cli.md): nothing a command starts outlives herd,
bad extraction regexes are named, out-of-range values fail as one-line errors naming the flag,
misspelt commands and flags get a suggestion, llama.cpp's spellings work, perplexity follows the
model's add_bos_token, and generate's plain-text output of samples and logprobs.

Usage: test_cli_limits.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERD, DATA = sys.argv[1], sys.argv[2]
MODEL = os.path.join(DATA, "models", "gqa4-hd32-untied-llama3")
GGUF = os.path.join(DATA, "gguf", "gqa4-hd32-untied-llama3.F32.gguf")  # the same model with its vocabulary
results = []


def run(*args, stdin=b"", timeout=120):
    p = subprocess.run([HERD, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def expect_bad_input(name, args, must_mention, timeout=60):
    try:
        rc, out, err = run(*args, timeout=timeout)
    except subprocess.TimeoutExpired:
        check(name, False, f"no answer within {timeout} s")
        return
    errors = [l for l in err.splitlines() if l.startswith("herd: error:")]
    check(name, rc == 2 and len(errors) == 1 and err.rstrip("\n").endswith(errors[0]) and must_mention in errors[0]
          and out == b"", f"rc={rc} stderr={err!r} stdout={out[:200]!r}")


def sleeps(marker):
    """Processes running exactly `sleep MARKER`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == b"sleep\0" + marker.encode() + b"\0":
                    found.append(int(pid))
        except OSError:
            pass
    return found


def with_add_bos_token(src, dst, value):
    """A copy of a GGUF file with tokenizer.ggml.add_bos_token added (the fixture has none)."""
    data = open(src, "rb").read()
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_value(t, pos):
        if t == 8:
            return pos + 8 + struct.unpack_from("<Q", data, pos)[0]
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            for _ in range(n):
                pos = skip_value(et, pos)
            return pos
        return pos + sizes[t]

    alignment = 32
    for _ in range(n_kv):
        klen = struct.unpack_from("<Q", data, pos)[0]
        key = data[pos + 8:pos + 8 + klen]
        pos += 8 + klen
        t = struct.unpack_from("<I", data, pos)[0]
        if key == b"general.alignment":
            alignment = struct.unpack_from("<I", data, pos + 4)[0]
        pos = skip_value(t, pos + 4)
    kv_end = pos
    for _ in range(n_tensors):
        nlen = struct.unpack_from("<Q", data, pos)[0]
        pos += 8 + nlen
        n_dims = struct.unpack_from("<I", data, pos)[0]
        pos += 4 + 8 * n_dims + 4 + 8
    infos = data[kv_end:pos]
    tensor_data = data[(pos + alignment - 1) // alignment * alignment:]
    key = b"tokenizer.ggml.add_bos_token"
    head = data[:8] + struct.pack("<QQ", n_tensors, n_kv + 1) + data[24:kv_end]
    head += struct.pack("<Q", len(key)) + key + struct.pack("<IB", 7, 1 if value else 0) + infos
    head += b"\0" * (-len(head) % alignment)
    open(dst, "wb").write(head + tensor_data)


tmp = tempfile.mkdtemp(prefix="herd-cli-limits-")
try:
    # --- Nothing a test command starts outlives herd: not a job in the background of its process
    # group, not a child that left it for its own session. The markers are unique to this run.
    in_session, in_group = f"3001.{os.getpid()}", f"3002.{os.getpid()}"
    tasks = os.path.join(tmp, "exec.jsonl")
    command = (f"setsid sleep {in_session} >/dev/null 2>&1 & sleep {in_group} >/dev/null 2>&1 & exit 0")
    with open(tasks, "w") as f:
        f.write(json.dumps({"id": "bg", "prompt": "hello", "max_tokens": 2, "test": {"command": command}}) + "\n")
    start = time.monotonic()
    rc, out, err = run("eval", "-m", GGUF, "--tasks", tasks, "--allow-exec", "--device", "cpu")
    check("eval with a test command that leaves children", rc == 0 and time.monotonic() - start < 60, err)
    left = sleeps(in_session) + sleeps(in_group)
    check("nothing a test command started is left running", not left, f"still running: {left}")
    for pid in left:  # a failure must not leave them behind either
        os.kill(pid, 9)

    # --- A regex that does not compile names where it came from (tests/eval has the backtracking
    # limits: a model's output of 10 KB is out of reach here).
    tasks = os.path.join(tmp, "regex.jsonl")
    with open(tasks, "w") as f:
        f.write(json.dumps({"id": "r", "prompt": "p", "answer": "a", "extract": "regex", "pattern": "(a"}) + "\n")
    expect_bad_input("a bad regex names the file, line and field", ["eval", "-m", GGUF, "--tasks", tasks],
                     "regex.jsonl:1: field 'pattern': not a valid regular expression (PCRE2: missing closing")

    # --- Out-of-range values: exit 2, one line naming the flag, readable ranges, and fast.
    cfg = os.path.join(tmp, "c.json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
                   "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                   "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}, f)
    gen = ["generate", "-m", MODEL, "--ids", "1,2", "--device", "cpu"]
    expect_bad_input("bench -b 100000", ["bench", "--synthetic", cfg, "-b", "100000"], "-b: batch size 100000 is not from 1 to 1024")
    expect_bad_input("bench -b 5000", ["bench", "--synthetic", cfg, "-b", "1,5000"], "-b: batch size 5000")
    expect_bad_input("--threads 100000", gen + ["--threads", "100000"], "--threads: '100000' is not 0 (one per core) or")
    expect_bad_input("-t -1", gen + ["-t", "-1"], "--threads")
    expect_bad_input("--seed 2^64", gen + ["--seed", str(2**64)], "--seed: '18446744073709551616' is not a seed")
    expect_bad_input("--seed -1", gen + ["--seed", "-1"], "--seed: '-1' is not a seed")
    expect_bad_input("make-model --seed 2^64", ["make-model", "--config", cfg, "-o", os.path.join(tmp, "m"),
                                                "--seed", str(2**64)], "--seed")
    expect_bad_input("bench --layers 0", ["bench", "--synthetic", cfg, "--layers", "0"], "--layers: '0' is not an integer from 1 to 1024")
    expect_bad_input("make-model --layers 0", ["make-model", "--config", cfg, "-o", os.path.join(tmp, "m"), "--layers", "0"], "--layers")
    expect_bad_input("bench --bandwidth -5", ["bench", "--synthetic", cfg, "--bandwidth", "-5"], "--bandwidth: '-5' is not a number above 0")
    expect_bad_input("perplexity --ctx -1", ["perplexity", "-m", GGUF, "-f", cfg, "--ctx", "-1"], "--ctx-size: '-1' is not an integer of at least 2")
    expect_bad_input("--kv-memory 1e30", gen + ["--kv-memory", "1e30"], "--kv-memory: '1e30' is too large")
    expect_bad_input("--tool-output-cap 1e30", ["chat", "-m", MODEL, "--tool-output-cap", "1e30"], "--tool-output-cap: '1e30' is too large")
    expect_bad_input("eval --exec-timeout 1e400", ["eval", "-m", GGUF, "--tasks", cfg, "--exec-timeout", "1e400"], "--exec-timeout")
    rc, out, err = run(*gen, "-n", "0")
    check("-n 0 states a readable range", rc == 2 and "--n-predict: '0' is not an integer of at least 1" in err
          and len(err) < 200, err)
    # bench reads the engine's events from a few threads, not one per request.
    p = subprocess.Popen([HERD, "bench", "--synthetic", cfg, "-b", "256", "-p", "4", "-n", "8", "--reps", "1",
                          "--device", "cpu", "-t", "1", "--kv-memory", "64MiB", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    most = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                most = max(most, int(next(l for l in f if l.startswith("Threads:")).split()[1]))
        except (OSError, StopIteration):
            pass
        time.sleep(0.005)
    out, err = p.communicate(timeout=120)
    rows = json.loads(out) if p.returncode == 0 else []
    check("bench -b 256 runs on a few threads", p.returncode == 0 and len(rows) == 2 and 0 < most < 32
          and all(r["tok_s"] > 0 for r in rows), f"rc={p.returncode} threads={most} {err.decode()[-300:]}")

    # --- Misspelt commands and flags: named, with the likely one, and where the help is.
    expect_bad_input("unknown command", ["genrate", "-m", MODEL], "unknown command 'genrate'; did you mean generate? (see herd --help)")
    expect_bad_input("unknown flag", gen + ["--temprature", "0.5"],
                     "generate: unknown flag --temprature; did you mean --temp? (see herd generate --help)")
    expect_bad_input("unknown flag, close to none", gen + ["--zzzzzz"], "unknown flag --zzzzzz (see herd generate --help)")
    expect_bad_input("other errors point to the command's help", ["generate", "--ids", "1"], "(see herd generate --help)")

    # --- llama.cpp's spellings: -c/--ctx-size, -t, -f.
    rc, out, err = run("logits", "-m", MODEL, "--ids", "1,2,3", "-c", "64", "-t", "1", "--device", "cpu")
    rc2, out2, _ = run("logits", "-m", MODEL, "--ids", "1,2,3", "--ctx-size", "64", "--threads", "1", "--device", "cpu")
    check("logits -c -t", rc == 0 and rc2 == 0 and out == out2 and json.loads(out)["n_vocab"] == 256, err)
    prompt = os.path.join(tmp, "prompt.txt")
    with open(prompt, "w") as f:
        f.write("The lighthouse keeper")
    rc, out, err = run("generate", "-m", GGUF, "-f", prompt, "-n", "4", "--json", "--device", "cpu", "-t", "1")
    rc2, out2, _ = run("generate", "-m", GGUF, "-p", "The lighthouse keeper", "-n", "4", "--json", "--device", "cpu")
    check("generate -f FILE is -p with the file's text", rc == 0 and out == out2 and json.loads(out)["usage"]["prompt_tokens"] > 10,
          err)
    expect_bad_input("generate -f missing", ["generate", "-m", GGUF, "-f", os.path.join(tmp, "nope.txt")], "nope.txt")
    expect_bad_input("generate -f with -p", ["generate", "-m", GGUF, "-f", prompt, "-p", "x"], "excludes")
    expect_bad_input("generate -f /dev/zero", ["generate", "-m", GGUF, "-f", "/dev/zero"], "/dev/zero")
    expect_bad_input("generate -f a directory", ["generate", "-m", GGUF, "-f", tmp], tmp)
    rc, out, _ = run("--help")
    check("herd --help names llama.cpp's spellings", rc == 0 and b"-c/--ctx-size" in out and b"-f FILE" in out, out[-400:])
    rc, out, _ = run("perplexity", "--help")
    check("perplexity --help: -c,--ctx-size,--ctx", rc == 0 and b"-c,--ctx-size,--ctx" in out, out)

    # --- perplexity follows the model's add_bos_token; --bos and --no-bos override it.
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write("The keeper climbed the tower every evening and polished the lens until it shone.")
    no_bos_model = os.path.join(tmp, "no-bos.gguf")
    with_add_bos_token(GGUF, no_bos_model, False)

    def ppl(model, *flags):
        rc, out, err = run("perplexity", "-m", model, "-f", text, "--json", "--device", "cpu", *flags)
        return json.loads(out) if rc == 0 else {"error": err}

    adds, forced, without = ppl(GGUF), ppl(GGUF, "--bos"), ppl(GGUF, "--no-bos")
    n = adds.get("n_tokens", 0)
    check("perplexity: BOS when the model adds one", n > 10 and adds == forced, (adds, forced))
    check("perplexity --no-bos: the first token is context", without.get("n_tokens") == n - 1
          and without["perplexity"] != adds["perplexity"], without)
    follows, back = ppl(no_bos_model), ppl(no_bos_model, "--bos")
    check("perplexity: no BOS when add_bos_token is false", follows == without, (follows, without))
    check("perplexity --bos overrides add_bos_token", back == adds, (back, adds))
    windows = ppl(no_bos_model, "-c", "4")
    check("perplexity without BOS: windows score every token after the first once", windows.get("n_tokens") == n - 1, windows)

    # --- generate as text: samples apart, logprobs readable.
    rc, out, err = run("generate", "-m", GGUF, "-p", "hello", "-n", "3", "--samples", "3", "--temp", "1", "--seed", "5",
                       "--device", "cpu")
    lines = out.split(b"\n")
    check("--samples as text: a header line before samples 2 and 3", rc == 0
          and lines.count(b"--- sample 2 ---") == 1 and lines.count(b"--- sample 3 ---") == 1
          and lines.index(b"--- sample 2 ---") < lines.index(b"--- sample 3 ---") and out.endswith(b"\n"), out)
    rc, out, err = run("generate", "-m", GGUF, "-p", "hello", "-n", "3", "--logprobs", "2", "--device", "cpu")
    rows = out.decode("utf-8", "replace").splitlines()
    parts = [r.split("\t") for r in rows]
    check("--logprobs as text: a line per token with its text, logprob and alternatives", rc == 0 and len(rows) == 3
          and all(len(p) == 3 and p[0].startswith('"') and float(p[1]) <= 0 and p[2].startswith("top: \"")
                  and p[2].count(", ") >= 1 for p in parts), out)
    rc, out, err = run("generate", "-m", GGUF, "-p", "hello", "-n", "3", "--logprobs", "21", "--device", "cpu")
    check("--logprobs 21 rejected", rc == 2 and "--logprobs: '21' is not an integer from 0 to 20" in err, err)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
