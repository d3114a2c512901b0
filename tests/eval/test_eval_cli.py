#!/usr/bin/env python3
"""herd eval end to end (docs/eval.md) on a tiny random model with Llama 3's vocabulary and tokenizer.

Loglikelihood scores equal the sum of the prompt logprobs `herd generate --prompt-logprobs` returns
for the same tokens (tokenized here as lm-evaluation-harness does, with `herd tokenize`), and are the
same at --concurrency 1 and 32; --out resumes; test commands need --allow-exec, give pass@k, and are
killed at their timeout; bad task lines exit 2 with one line naming FILE:LINE.

Usage: test_eval_cli.py HERD_BINARY TESTS_DATA_DIR. Standard library only. Prints 'N passed, N failed'
and exits non-zero on any failure.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERD, DATA = sys.argv[1], sys.argv[2]
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def run(*args, stdin=b"", timeout=240):
    p = subprocess.run([HERD, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def write_jsonl(path, items):
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def make_model(tmp):
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 32,
                   "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                   "bos_token_id": 128000, "eos_token_id": [128001, 128009]}, f)
    model = os.path.join(tmp, "model")
    rc, _, err = run("make-model", "--config", cfg, "-o", model, "--seed", "7")
    assert rc == 0, err
    shutil.copy(os.path.join(DATA, "tokenizer", "tokenizer.model"), os.path.join(model, "tokenizer.model"))
    return model


def mc_items(n):
    """Multiple-choice items of different lengths; a few with a trailing space in the context
    (lm-evaluation-harness moves it into the choice) and non-ASCII choices (acc_norm counts characters)."""
    items = []
    for i in range(n):
        a, b = i % 7 + 2, i % 5 + 3
        context = f"Question {i}: " + "Think about it. " * (i % 6) + f"What is {a} plus {b}?\nAnswer:"
        if i % 5 == 0:
            context += " "
        choices = [str(a + b), str(a + b + 1), "n\u00e9ant", "none of these"]
        items.append({"id": f"q{i}", "subject": ["arith", "words", "misc"][i % 3], "context": context,
                      "choices": choices, "answer": i % 4})
    return items


def lm_eval_tokens(model, context, continuation):
    """(whole ids, n_context) as lm-evaluation-harness splits them, from `herd tokenize --bos`."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    lines = (json.dumps({"text": context}) + "\n" + json.dumps({"text": context + continuation}) + "\n").encode()
    rc, out, err = run("tokenize", "-m", model, "--bos", "--jsonl", stdin=lines)
    assert rc == 0, err
    ctx, whole = [json.loads(l)["ids"] for l in out.splitlines()]
    return whole, len(ctx)


tmp = tempfile.mkdtemp(prefix="herd-eval-")
try:
    model = make_model(tmp)
    dev = ["--device", "cpu", "--threads", "2"]

    # --- loglikelihood: equal to the engine's prompt logprobs, unchanged by concurrency ------------
    tasks = os.path.join(tmp, "mc.jsonl")
    items = mc_items(40)
    write_jsonl(tasks, items)
    out1, out32 = os.path.join(tmp, "c1.jsonl"), os.path.join(tmp, "c32.jsonl")
    summary = os.path.join(tmp, "summary.json")
    summary1 = os.path.join(tmp, "summary1.json")
    rc, stdout1, err1 = run("eval", "-m", model, "--tasks", tasks, "--out", out1, "--concurrency", "1",
                            "--summary", summary1, *dev)
    rc32, stdout32, err32 = run("eval", "-m", model, "--tasks", tasks, "--out", out32, "--concurrency", "32",
                                "--summary", summary, *dev)
    check("eval runs at concurrency 1 and 32", rc == 0 and rc32 == 0, err1 + err32)
    r1, r32 = read_jsonl(out1), read_jsonl(out32)
    check("one record per item, in order", [r["id"] for r in r1] == [it["id"] for it in items]
          and [r["id"] for r in r32] == [it["id"] for it in items], [r["id"] for r in r32][:5])
    check("loglikelihoods identical at concurrency 1 and 32",
          [r["logprobs"] for r in r1] == [r["logprobs"] for r in r32] and r1 == r32,
          next((a, b) for a, b in zip(r1, r32) if a != b) if r1 != r32 else "")
    # The choices after the first take the context's full blocks from the prefix cache.
    cached = json.load(open(summary1))["cached_prompt_tokens"] if rc == 0 else 0
    check("contexts come from the prefix cache", cached >= 16 * 3 * sum(1 for it in items if len(it["context"]) > 90),
          f"cached_prompt_tokens {cached}")
    check("the same table either way", stdout1 == stdout32 and "| mc | arith |" in stdout1
          and "| mc | macro avg |" in stdout1 and "| mc | micro avg | 40 |" in stdout1, stdout1 + stdout32)

    # The engine API's prompt logprobs for the same tokens, through `herd generate`, summed here.
    worst, n_compared, token_counts_ok = 0.0, 0, True
    for k in (0, 1, 5, 17, 33):
        it, rec = items[k], r32[k]
        for c, choice in enumerate(it["choices"]):
            whole, n_ctx = lm_eval_tokens(model, it["context"], " " + choice)
            rc, out, err = run("generate", "-m", model, "--ids", ",".join(map(str, whole)), "-n", "1", "--json",
                               "--prompt-logprobs", *dev)
            pl = json.loads(out)["samples"][0]["prompt_logprobs"]
            want = sum(p["logprob"] for p in pl[n_ctx:])
            worst = max(worst, abs(want - rec["logprobs"][c]))
            token_counts_ok &= rec["n_tokens"][c] == len(whole) - n_ctx
            n_compared += 1
    # generate prints each logprob to 9 significant digits; the sums agree to that rounding.
    check(f"loglikelihood = sum of the choice tokens' prompt logprobs ({n_compared} choices)",
          n_compared == 20 and worst < 1e-5, f"worst difference {worst}")
    check("n_tokens are the choice tokens beyond the context's", token_counts_ok)

    # acc, acc_norm and the averages in --summary follow from the records (computed here).
    def argmax(xs):
        return max(range(len(xs)), key=lambda i: (xs[i], -i))
    acc = [argmax(r["logprobs"]) == r["answer"] for r in r32]
    acc_norm = [argmax([lp / len(ch) for lp, ch in zip(r["logprobs"], r["choices"])]) == r["answer"] for r in r32]
    s = json.load(open(summary))["tasks"]["mc"]
    by_subject = {}
    for r, a in zip(r32, acc):
        by_subject.setdefault(r["subject"], []).append(a)
    macro = sum(sum(v) / len(v) for v in by_subject.values()) / len(by_subject)
    check("summary: micro acc and acc_norm", abs(s["metrics"]["acc"] - sum(acc) / 40) < 1e-12
          and abs(s["metrics"]["acc_norm"] - sum(acc_norm) / 40) < 1e-12, s["metrics"])
    check("summary: macro acc over subjects", abs(s["macro"]["acc"] - macro) < 1e-12
          and s["subjects"]["arith"]["n"] == 14, s)

    # --- resume --------------------------------------------------------------------------------------
    rout = os.path.join(tmp, "resume.jsonl")
    rc, _, err = run("eval", "-m", model, "--tasks", tasks, "--out", rout, "--limit", "5", *dev)
    check("--limit runs the first items", rc == 0 and [r["id"] for r in read_jsonl(rout)] == ["q0", "q1", "q2", "q3", "q4"], err)
    with open(rout, "a") as f:
        f.write('{"id": "q5", "task": "mc", "subj')  # a line cut off by an interrupted run
    rsum = os.path.join(tmp, "resume-summary.json")
    rc, _, err = run("eval", "-m", model, "--tasks", tasks, "--out", rout, "--limit", "12", "--summary", rsum, *dev)
    ids = [r["id"] for r in read_jsonl(rout)]
    check("resume skips done items and drops a cut-off line", rc == 0 and ids == [f"q{i}" for i in range(12)]
          and "5 of 12 items are already in" in err and json.load(open(rsum))["n_run"] == 7, f"{ids} {err}")
    check("resumed records equal a fresh run's", read_jsonl(rout) == r32[:12])
    rc, stdout, err = run("eval", "-m", model, "--tasks", tasks, "--out", rout, "--limit", "12", *dev)
    check("nothing left to run: the table from --out alone", rc == 0 and "| mc | micro avg | 12 |" in stdout
          and "items to run" not in err, stdout + err)

    # --- generation: seeded, and the same whatever runs beside it -----------------------------------
    gen = os.path.join(tmp, "gen.jsonl")
    write_jsonl(gen, [{"id": f"g{i}", "prompt": f"Count to {i}:", "answer": str(i), "extract": "last_number", "n": 3,
                       "temperature": 1.0, "max_tokens": 6} for i in range(6)])
    outs = []
    for conc, seed in (("1", "5"), ("0", "5"), ("0", "6")):
        o = os.path.join(tmp, f"gen-{conc}-{seed}.jsonl")
        rc, _, err = run("eval", "-m", model, "--tasks", gen, "--out", o, "--concurrency", conc, "--seed", seed, *dev)
        outs.append([[x["output"] for x in r["samples"]] for r in read_jsonl(o)] if rc == 0 else err)
    check("sampled outputs repeat with a seed, at any concurrency", outs[0] == outs[1] and len(outs[0]) == 6, outs[:2])
    check("another seed samples differently", outs[2] != outs[1])
    check("maj@3 is reported", rc == 0 and "maj@3" in json.dumps(read_jsonl(o)[0]["metrics"]))

    # --- test commands ---------------------------------------------------------------------------------
    code = os.path.join(tmp, "code.jsonl")
    # `grep -q " "` passes a sample whose text holds a space (about half of Llama 3's tokens start
    # with one): whether each passed is known from its output.
    write_jsonl(code, [
        {"id": "h1", "prompt": "def f():", "n": 8, "temperature": 1.0, "max_tokens": 1, "pass_at": [1, 3],
         "test": {"command": "grep -q ' '"}},
        {"id": "h2", "prompt": "def g():", "n": 2, "max_tokens": 2, "test": {"command": "sleep 30", "timeout_s": 0.5}},
    ])
    expect = "item 'h1' has a test command"
    rc, stdout, err = run("eval", "-m", model, "--tasks", code, *dev)
    check("test commands need --allow-exec", rc == 2 and stdout == "" and err.count("\n") == 1
          and err.startswith(f"herd: error: {code}:1: ") and expect in err and "--allow-exec" in err, err)
    cout = os.path.join(tmp, "code-out.jsonl")
    t0 = time.time()
    rc, stdout, err = run("eval", "-m", model, "--tasks", code, "--out", cout, "--allow-exec", *dev)
    took = time.time() - t0
    recs = read_jsonl(cout) if rc == 0 else []
    if recs:
        n, c = 8, sum(" " in s["output"] for s in recs[0]["samples"])
        want1 = 1 - math.comb(n - c, 1) / math.comb(n, 1)
        want3 = 1 - math.comb(n - c, 3) / math.comb(n, 3)
        check(f"pass@k from a test command ({c} of 8 passed)", 0 < c < 8 and recs[0]["n_passed"] == c
              and [s["passed"] for s in recs[0]["samples"]] == [" " in s["output"] for s in recs[0]["samples"]]
              and abs(recs[0]["metrics"]["pass@1"] - want1) < 1e-12 and abs(recs[0]["metrics"]["pass@3"] - want3) < 1e-12,
              recs[0])
        check("a hanging test command is killed at its timeout", recs[1]["metrics"]["pass@1"] == 0
              and all("timed out after 0.5 s" in s["test_error"] for s in recs[1]["samples"]) and took < 30,
              f"{recs[1]} in {took:.1f} s")
    else:
        check("eval --allow-exec runs", False, err)

    # --- bad task files: exit 2, one line naming FILE:LINE and the field ---------------------------
    def expect_bad(name, lines, must_mention):
        path = os.path.join(tmp, "bad.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        rc, stdout, err = run("eval", "-m", model, "--tasks", path, *dev)
        check(name, rc == 2 and stdout == "" and err.count("\n") == 1 and err.startswith("herd: error: " + path)
              and must_mention in err, f"rc={rc} {err!r}")
    good = json.dumps(items[0])
    expect_bad("bad JSON on line 2", [good, "{oops"], ":2: not valid JSON")
    expect_bad("unknown field", [good, good.replace('"q0"', '"x"').replace('"answer"', '"anwser"')], ":2: field 'answer'")
    expect_bad("answer out of range", [json.dumps({**items[0], "answer": 4})], ":1: field 'answer': must be the index")
    expect_bad("duplicate id", [good, good], ":2: field 'id': 'q0' is already used on line 1")
    expect_bad("no reference", ['{"id": 1, "prompt": "p"}'], ":1: field 'answer': missing")
    rc, _, err = run("eval", "-m", model, "--tasks", os.path.join(tmp, "missing.jsonl"), *dev)
    check("missing task file", rc == 2 and "missing.jsonl: cannot open" in err, err)
    rc, _, err = run("eval", "-m", model, "--tasks", tasks, "--out", tasks, *dev)
    check("--out that is not a results file", rc == 2 and f"{tasks}:1: not a herd eval result" in err, err)
finally:
    shutil.rmtree(tmp)

n_fail = results.count(False)
print(f"{len(results) - n_fail} passed, {n_fail} failed")
sys.exit(1 if n_fail else 0)
