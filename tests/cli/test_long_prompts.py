#!/usr/bin/env python3
"""Prompts longer than one engine step: generate, chat (piped) and bench with prompts of 513, 2,000
and 8,000+ tokens, prefilled in chunks of 1, 7 and 512 tokens. Greedy tokens must not depend on the
chunking, and must equal what `herd logits` computes over the whole sequence in a single pass (the
Model API: no scheduler, no chunks), so a chunk that skips or repeats KV writes cannot pass.

Usage: test_long_prompts.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERD, DATA = sys.argv[1], sys.argv[2]
results = []
N_GEN = 3


def run(*args, stdin=b"", timeout=300):
    p = subprocess.run([HERD, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def make_model(tmp):
    """A one-layer model with Llama 3's full vocabulary and tokenizer and a 16K context."""
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 32,
                   "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "max_position_embeddings": 16384, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                   "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}, f)
    model = os.path.join(tmp, "model")
    rc, _, err = run("make-model", "--config", cfg, "-o", model, "--seed", "7")
    assert rc == 0, err
    shutil.copy(os.path.join(DATA, "tokenizer", "tokenizer.model"), os.path.join(model, "tokenizer.model"))
    return model


WORDS = ("the river carried small stones past an old mill where seven children counted boats "
         "under a grey sky while their grandmother sang about winter markets and distant ships").split()


def text_of_tokens(model, n):
    """Text that encodes (with BOS) to at least n tokens, and its ids."""
    words = []
    while True:
        words.extend(WORDS)
        text = " ".join(words)
        if len(words) >= n:
            rc, out, err = run("tokenize", "-m", model, "--bos", stdin=text.encode())
            assert rc == 0, err
            ids = json.loads(out)
            if len(ids) >= n:
                # Trim word by word from the end to land just past n.
                while len(ids) > n + 8 and len(words) > 1:
                    words = words[: len(words) - max(1, (len(ids) - n) // 2)]
                    text = " ".join(words)
                    ids = json.loads(run("tokenize", "-m", model, "--bos", stdin=text.encode())[1])
                if len(ids) >= n:
                    return text, ids
                words.extend(WORDS)


def greedy_by_logits(model, ids, n):
    """n greedy tokens, each the argmax of `herd logits` over the whole sequence so far."""
    ids = list(ids)
    out = []
    for _ in range(n):
        rc, o, err = run("logits", "-m", model, "--device", "cpu", "--ctx", "16384", "--ids", ",".join(map(str, ids)))
        assert rc == 0, err
        row = json.loads(o)["logits"][0]
        tok = max(range(len(row)), key=lambda i: row[i])
        out.append(tok)
        ids.append(tok)
    return out


tmp = tempfile.mkdtemp(prefix="herd-long-")
try:
    model = make_model(tmp)
    for target in (513, 2000, 8200):
        text, ids = text_of_tokens(model, target)
        want = greedy_by_logits(model, ids, N_GEN)
        # Chunks of one token make 8,000 steps: they run on the two shorter prompts.
        for chunk in (1, 7, 512) if target < 8000 else (7, 512):
            rc, out, err = run("generate", "-m", model, "--device", "cpu", "-p", text, "-n", str(N_GEN), "--json",
                               "--batch-tokens", str(chunk), "--temp", "0")
            j = json.loads(out) if rc == 0 else {}
            got = j["samples"][0]["ids"] if j else None
            check(f"generate: {len(ids)}-token prompt in chunks of {chunk} equals one pass",
                  rc == 0 and got == want and j["usage"]["prompt_tokens"] == len(ids),
                  f"rc={rc} got={got} want={want} {err[-300:]}")

    # The plain-text path a user takes (streamed text, default chunking).
    text, ids = text_of_tokens(model, 2000)
    rc, out, err = run("generate", "-m", model, "--device", "cpu", "-p", text, "-n", "4")
    check("generate -p with a 2,000-token prompt streams text", rc == 0 and err.count("herd: error") == 0, err[-300:])

    # chat, piped: a long system prompt and a long user turn, then a short second turn that sees both.
    system, _ = text_of_tokens(model, 1500)
    user, _ = text_of_tokens(model, 2000)
    p = subprocess.run([HERD, "chat", "-m", model, "--device", "cpu", "--seed", "1", "--system", system, "-n", "4",
                        "--batch-tokens", "512"], input=(user + "\nand once more\n").encode(), capture_output=True,
                       timeout=300)
    check("chat (piped): a 1,500-token system prompt and a 2,000-token message both get replies",
          p.returncode == 0 and p.stdout.count(b"\x1e") == 2, p.stderr[-400:])

    # bench: a prefill longer than one step.
    rc, out, err = run("bench", "-m", model, "--device", "cpu", "-p", "600", "-n", "2", "-b", "1", "--json",
                       "--batch-tokens", "128")
    rows = json.loads(out) if rc == 0 else []
    check("bench -p 600 (chunks of 128) reports its prefill", rc == 0 and any(r.get("test", "").startswith("pp600")
                                                                           for r in rows), f"{err[-300:]} {out[:300]!r}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

n_fail = results.count(False)
print(f"{len(results) - n_fail} passed, {n_fail} failed")
sys.exit(1 if n_fail else 0)
