#!/usr/bin/env python3
"""The command-line contract (docs/cli.md): JSON shapes, exit codes, one-line errors on stderr.

Usage: test_cli.py HERD_BINARY TESTS_DATA_DIR. Standard library only (CI has no PyPI packages).
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERD, DATA = sys.argv[1], sys.argv[2]
MODEL = os.path.join(DATA, "models", "gqa4-hd32-untied-llama3")
REF = os.path.join(DATA, "reference", "gqa4-hd32-untied-llama3")
TOKENIZER = os.path.join(DATA, "tokenizer", "tokenizer.model")
results = []


def run(*args, stdin=b""):
    p = subprocess.run([HERD, *args], input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def read_safetensors(path):
    """A minimal reader for F32 tensors (independent of herd's)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        vals = struct.unpack(f"<{(end - b) // 4}f", data[b:end])
        rows = e["shape"][0]
        cols = len(vals) // rows
        out[name] = [vals[r * cols:(r + 1) * cols] for r in range(rows)]
    return out


def expect_bad_input(name, args, must_mention, stdin=b""):
    rc, out, err = run(*args, stdin=stdin)
    # Logs may precede it (the KV capacity); the error itself is one line, the last.
    errors = [l for l in err.splitlines() if l.startswith("herd: error:")]
    check(name, rc == 2 and len(errors) == 1 and err.rstrip("\n").endswith(errors[0]) and must_mention in errors[0]
          and out == b"", f"rc={rc} stderr={err!r} stdout={out[:200]!r}")


ref = json.load(open(REF + ".json"))
ref_logits = read_safetensors(REF + ".safetensors")["logits_bf16"]
ids = ",".join(map(str, ref["input_ids"]))

rc, out, err = run("--help")
check("--help lists the commands", rc == 0 and all(c in out.decode() for c in ("logits", "generate", "tokenize", "make-model", "perplexity")),
      out[:300])
for sub in ("logits", "generate", "tokenize", "detokenize", "make-model"):
    rc, out, _ = run(sub, "--help")
    check(f"{sub} --help", rc == 0 and b"--" in out)

# logits: the last row by default, every row with --all; values as transformers computed them.
rc, out, err = run("logits", "-m", MODEL, "--ids", ids, "--device", "cpu")
j = json.loads(out) if rc == 0 else {}
check("logits prints one row", rc == 0 and j.get("n_vocab") == 256 and len(j["logits"]) == 1 and out.endswith(b"}\n"), err)
if rc == 0:
    max_ref = max(abs(v) for row in ref_logits for v in row)
    diff = max(abs(a - b) for a, b in zip(j["logits"][0], ref_logits[-1]))
    check("logits match transformers (bf16)", diff / max_ref <= 2e-2, f"rel err {diff / max_ref}")
rc, out, err = run("logits", "-m", MODEL, "--ids", ids, "--all", "--device", "cpu")
check("logits --all prints every position", rc == 0 and len(json.loads(out)["logits"]) == len(ref["input_ids"]), err)

# generate: greedy ids streamed, then --json. herd's CPU activations are f32, so with these
# bf16-representable weights its greedy path is transformers' f32 one (the bf16 one nearly ties at step 5).
rc, out, err = run("generate", "-m", MODEL, "--ids", ids, "-n", "8", "--device", "cpu")
got = [int(t) for t in out.split()] if rc == 0 else []
check("generate streams the greedy ids", rc == 0 and got == ref["greedy_f32"][:8], f"{got} vs {ref['greedy_f32'][:8]} {err}")
rc, out, err = run("generate", "-m", MODEL, "--ids", ids, "-n", "4", "--json", "--device", "cpu")
j = json.loads(out) if rc == 0 else {}
check("generate --json shape", rc == 0 and j["samples"][0]["ids"] == ref["greedy_f32"][:4]
      and j["samples"][0]["finish_reason"] == "length" and j["usage"]["prompt_tokens"] == 64
      and j["usage"]["completion_tokens"] == 4, out)

# Sampling flags: a seed makes a sampled run repeatable; --logprobs adds one entry per token.
sampled = ["generate", "-m", MODEL, "--ids", ids, "-n", "6", "--json", "--device", "cpu", "--temp", "0.9", "--top-p", "0.95",
           "--seed", "3", "--logprobs", "2"]
rc1, out1, err1 = run(*sampled)
rc2, out2, _ = run(*sampled)
j = json.loads(out1) if rc1 == 0 else {}
check("generate --seed repeats a sampled run", rc1 == 0 and rc2 == 0 and out1 == out2, err1)
lp = j["samples"][0].get("logprobs", []) if j else []
check("generate --logprobs", len(lp) == 6 and all(len(e["top"]) == 2 and e["logprob"] <= 0 for e in lp), out1[:300])
rc, out, err = run("generate", "-m", MODEL, "--ids", ids, "-n", "1", "--json", "--device", "cpu", "--prompt-logprobs")
pl = json.loads(out)["samples"][0].get("prompt_logprobs", []) if rc == 0 else []
check("generate --prompt-logprobs", len(pl) == 64 and pl[0] is None and pl[1]["token"] == ref["input_ids"][1]
      and all(p["logprob"] <= 0 for p in pl[1:]), err)
# ... and they are the log-softmax of `herd logits --all` for the same ids (computed here).
rc, out, err = run("logits", "-m", MODEL, "--ids", ids, "--all", "--device", "cpu")
rows = json.loads(out)["logits"] if rc == 0 else []
def log_softmax_at(row, token):
    m = max(row)
    return row[token] - m - math.log(sum(math.exp(v - m) for v in row))
check("prompt logprobs = log-softmax of logits --all", len(rows) == 64 and len(pl) == 64 and all(
    abs(pl[i]["logprob"] - log_softmax_at(rows[i - 1], ref["input_ids"][i])) < 1e-4 for i in range(1, 64)), err)
rc, out, err = run("generate", "-m", MODEL, "--ids", ids, "-n", "5", "--json", "--device", "cpu", "--samples", "3",
                   "--temp", "1", "--seed", "9")
j = json.loads(out) if rc == 0 else {}
check("generate --samples", rc == 0 and len(j["samples"]) == 3 and all(len(x["ids"]) <= 5 for x in j["samples"])
      and j["usage"]["prompt_tokens"] == 64, out + err.encode())
# --kv-dtype fp8: one byte per K and V element (the default CPU cache holds f16), generation runs.
infos = {}
for kv in ("auto", "fp8"):
    rc, out, err = run("info", "-m", MODEL, "--device", "cpu", "--kv-dtype", kv, "--json")
    infos[kv] = json.loads(out) if rc == 0 else {}
check("info --kv-dtype fp8 halves the CPU's f16 cache", infos["auto"].get("kv_dtype") == "F16"
      and infos["fp8"].get("kv_dtype") == "F8_E4M3"
      and infos["fp8"]["kv_bytes_per_token"] * 2 == infos["auto"]["kv_bytes_per_token"], infos)
rc, out, err = run("generate", "-m", MODEL, "--ids", ids, "-n", "8", "--device", "cpu", "--kv-dtype", "fp8", "--json")
j = json.loads(out) if rc == 0 else {}
check("generate --kv-dtype fp8", rc == 0 and len(j["samples"][0]["ids"]) == 8, err)
expect_bad_input("bad --kv-dtype", ["generate", "-m", MODEL, "--ids", "1", "--kv-dtype", "int8"], "--kv-dtype")
expect_bad_input("bad --kv-memory size", ["generate", "-m", MODEL, "--ids", "1", "--kv-memory", "lots"], "not a size")
expect_bad_input("bad sampling value", ["generate", "-m", MODEL, "--ids", "1", "--top-p", "1.5", "--device", "cpu"], "top_p")

# tokenize / detokenize: ids of "Hello world" in the Llama 3 vocabulary (tiktoken agrees).
rc, out, err = run("tokenize", "-m", TOKENIZER, stdin=b"Hello world")
check("tokenize", rc == 0 and json.loads(out) == [9906, 1917], out + err.encode())
rc, out, err = run("tokenize", "-m", TOKENIZER, "--bos", "--special", stdin=b"<|eot_id|>hi")
check("tokenize --bos --special", rc == 0 and json.loads(out) == [128000, 128009, 6151], out + err.encode())
rc, out, err = run("detokenize", "-m", TOKENIZER, stdin=b"[9906, 1917, 128009]")
check("detokenize", rc == 0 and out == b"Hello world<|eot_id|>", out)

# make-model writes a model the other commands load.
tmp = tempfile.mkdtemp(prefix="herd-cli-")
try:
    cfg = os.path.join(tmp, "c.json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 300, "hidden_size": 32, "intermediate_size": 48,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "eos_token_id": 2}, f)
    synth = os.path.join(tmp, "synth")
    rc, out, err = run("make-model", "--config", cfg, "-o", synth, "--dtype", "f16")
    check("make-model", rc == 0 and os.path.exists(os.path.join(synth, "model.safetensors")), err)
    rc, out, err = run("logits", "-m", synth, "--ids", "1,2,3", "--device", "cpu")
    check("make-model output loads", rc == 0 and json.loads(out)["n_vocab"] == 300, err)

    # bench on a synthetic model made in memory from a config path: the rows docs/cli.md describes.
    rc, out, err = run("bench", "--synthetic", cfg, "-p", "8", "-n", "4", "-b", "1,2", "--reps", "1", "--json",
                       "--device", "cpu", "--bandwidth", "20")
    rows = json.loads(out) if rc == 0 else []
    check("bench --synthetic --json", len(rows) == 4 and [r["test"] for r in rows] == ["pp8", "tg4", "pp8", "tg4"]
          and [r["batch"] for r in rows] == [1, 1, 2, 2] and all(r["tok_s"] > 0 for r in rows)
          and rows[1]["bound_tok_s"] is not None and rows[0]["bound_tok_s"] is None, out + err.encode())
    rc, out, err = run("bench", "--synthetic", cfg, "-p", "8", "-n", "4", "-b", "2", "--reps", "1", "--json",
                       "--device", "cpu", "--temp", "0.8", "--top-p", "0.95", "--seed", "3")
    rows = json.loads(out) if rc == 0 else []
    check("bench with sampling flags: a sampled decode", len(rows) == 2 and all(r["tok_s"] > 0 for r in rows),
          out + err.encode())
    expect_bad_input("bench --temp -1", ["bench", "--synthetic", cfg, "-p", "8", "--temp", "-1"],
                     "temperature must be >= 0")
    expect_bad_input("bench without a model", ["bench", "-p", "8"], "exactly one of -m")

    # --chat and --aliases on a tiny model with Llama 3's vocabulary and tokenizer.
    full = os.path.join(tmp, "full")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 16,
                   "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                   "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                   "bos_token_id": 128000, "eos_token_id": [128001, 128009]}, f)
    rc, _, err = run("make-model", "--config", cfg, "-o", full)
    shutil.copy(TOKENIZER, os.path.join(full, "tokenizer.model"))
    expanded = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
    rc, out, _ = run("tokenize", "-m", TOKENIZER, "--special", stdin=expanded.encode())
    want = json.loads(out)
    rc, out, err = run("generate", "-m", full, "-p", "<<start>><<user>>hi<<end>><<assistant>>", "--aliases", "-n", "2",
                       "--json", "--device", "cpu")
    check("generate --aliases", rc == 0 and json.loads(out)["usage"]["prompt_tokens"] == len(want), out + err.encode())
    # The Llama 3.1 template with no system message adds the default system turn with the dates
    # (tests/data/chat/vectors.jsonl); --chat must give exactly that prompt's length.
    conv = os.path.join(tmp, "conv.json")
    with open(conv, "w") as f:
        json.dump({"messages": [{"role": "user", "content": "hi"}]}, f)
    rc, out, _ = run("prompt", "-m", TOKENIZER, "--conversation", conv, "--ids")
    want_chat = json.loads(out) if rc == 0 else []
    rc, out, err = run("generate", "-m", full, "-p", "hi", "--chat", "-n", "2", "--json", "--device", "cpu")
    check("generate --chat", rc == 0 and len(want_chat) > 20
          and json.loads(out)["usage"]["prompt_tokens"] == len(want_chat), out + err.encode())

    # perplexity: exp of the mean -logprob of each text token after BOS, as generate --prompt-logprobs
    # gives them for BOS + the text's ids; windows of --ctx score every text token once.
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write("The keeper climbed the tower every evening and polished the lens until it shone.")
    rc, out, _ = run("tokenize", "-m", TOKENIZER, "--bos", stdin=open(text, "rb").read())
    text_ids = json.loads(out)
    rc, out, err = run("generate", "-m", full, "--ids", ",".join(map(str, text_ids)), "-n", "1", "--json",
                       "--device", "cpu", "--prompt-logprobs")
    lps = [p["logprob"] for p in json.loads(out)["samples"][0]["prompt_logprobs"][1:]] if rc == 0 else [0]
    rc, out, err = run("perplexity", "-m", full, "-f", text, "--json", "--device", "cpu")
    ppl = json.loads(out) if rc == 0 else {}
    check("perplexity = exp(mean -prompt logprob)", rc == 0 and ppl["n_tokens"] == len(text_ids) - 1
          and abs(ppl["perplexity"] - math.exp(-sum(lps) / len(lps))) < 1e-3 * ppl["perplexity"], out + err.encode())
    rc, out, err = run("perplexity", "-m", full, "-f", text, "--json", "--device", "cpu", "--ctx", "5")
    check("perplexity --ctx windows score every token once",
          rc == 0 and json.loads(out)["n_tokens"] == len(text_ids) - 1, out + err.encode())
    expect_bad_input("perplexity of a missing file", ["perplexity", "-m", full, "-f", os.path.join(tmp, "nope.txt")],
                     "nope.txt: cannot open")

    # Bad input: exit 2, one line on stderr naming what and why, nothing on stdout.
    expect_bad_input("missing model dir", ["logits", "-m", os.path.join(tmp, "nope"), "--ids", "1"], "no such file")
    os.makedirs(os.path.join(tmp, "empty"))
    expect_bad_input("missing config.json", ["logits", "-m", os.path.join(tmp, "empty"), "--ids", "1"], "missing config.json")
    bad_arch = os.path.join(tmp, "arch")
    os.makedirs(bad_arch)
    with open(os.path.join(bad_arch, "config.json"), "w") as f:
        json.dump({"architectures": ["MistralForCausalLM"]}, f)
    expect_bad_input("unsupported architecture", ["logits", "-m", bad_arch, "--ids", "1"], "unsupported architecture")
    trunc = os.path.join(tmp, "trunc")
    shutil.copytree(MODEL, trunc)
    st = os.path.join(trunc, "model.safetensors")
    with open(st, "r+b") as f:
        f.truncate(os.path.getsize(st) // 2)
    expect_bad_input("truncated safetensors", ["logits", "-m", trunc, "--ids", "1"], "model.safetensors: truncated")
    corrupt = os.path.join(tmp, "corrupt")
    shutil.copytree(MODEL, corrupt)
    with open(os.path.join(corrupt, "model.safetensors"), "r+b") as f:
        f.seek(8)
        f.write(b"!!!!")
    expect_bad_input("corrupt safetensors header", ["logits", "-m", corrupt, "--ids", "1"], "not valid JSON")
    incons = os.path.join(tmp, "inconsistent")
    shutil.copytree(MODEL, incons)
    c = json.load(open(os.path.join(incons, "config.json")))
    c["intermediate_size"] = 100
    json.dump(c, open(os.path.join(incons, "config.json"), "w"))
    expect_bad_input("shape disagrees with config", ["logits", "-m", incons, "--ids", "1"], "config implies [100, 128]")
finally:
    shutil.rmtree(tmp)

expect_bad_input("bad --ids", ["logits", "-m", MODEL, "--ids", "1,x"], "'x' is not a token id")
expect_bad_input("id out of range", ["logits", "-m", MODEL, "--ids", "1,999", "--device", "cpu"], "token id 999")
expect_bad_input("unknown flag", ["logits", "-m", MODEL, "--ids", "1", "--frobnicate"], "frobnicate")
expect_bad_input("no prompt", ["generate", "-m", MODEL], "--ids, -p or -f")
expect_bad_input("-p without a tokenizer", ["generate", "-m", MODEL, "-p", "hi", "--device", "cpu"], "has no tokenizer")
expect_bad_input("bad tokenizer file", ["tokenize", "-m", os.path.join(MODEL, "config.json")], "config.json")

# ---------------------------------------------------------------------------------------------
# herd prompt / herd toolcall. Expected prompts and ids come from the golden vectors
# (Jinja2 as transformers runs it, four tokenizers), not from herd.
CHAT = os.path.join(DATA, "chat")
vectors = [json.loads(l) for l in open(os.path.join(CHAT, "vectors.jsonl"), encoding="utf-8")]
tmp = tempfile.mkdtemp()
try:
    for v in (vectors[0], next(x for x in vectors if x["name"] == "tool_call_and_tool_result")):
        nested = os.path.join(tmp, "nested.json")
        json.dump({"messages": v["messages"], "variables": v["variables"]}, open(nested, "w"))
        rc, out, err = run("prompt", "-m", TOKENIZER, "--conversation", nested)
        check(f"prompt text ({v['name']}, nested form)", rc == 0 and out == v["prompt"].encode(), err)
        rc, out, err = run("prompt", "-m", TOKENIZER, "--conversation", nested, "--ids", "--special-in-content")
        check(f"prompt --ids --special-in-content ({v['name']})", rc == 0 and json.loads(out) == v["ids"]
              and out.endswith(b"]\n"), err)
    flat = os.path.join(tmp, "flat.json")
    v = next(x for x in vectors if x["name"] == "special_token_text_in_content")
    json.dump({"messages": v["messages"], **{k: x for k, x in v["variables"].items() if k not in ("bos_token", "eos_token")}},
              open(flat, "w"))
    rc, out, err = run("prompt", "-m", TOKENIZER, "--conversation", flat)
    check("prompt text (flat form)", rc == 0 and out == v["prompt"].encode(), err)
    rc, out, err = run("prompt", "-m", TOKENIZER, "--conversation", flat, "--ids")
    check("prompt --ids keeps special text in content plain", rc == 0 and json.loads(out) != v["ids"]
          and json.loads(out)[0] == 128000, err)
    bad = os.path.join(tmp, "bad.json")
    open(bad, "w").write('{"messages": [{"role": "user", "content": 3}]}')
    expect_bad_input("prompt: non-string content", ["prompt", "-m", TOKENIZER, "--conversation", bad], "messages[0].content")
    open(bad, "w").write("{not json")
    expect_bad_input("prompt: invalid JSON", ["prompt", "-m", TOKENIZER, "--conversation", bad], "bad.json")
    expect_bad_input("prompt: missing file", ["prompt", "-m", TOKENIZER, "--conversation", os.path.join(tmp, "nope.json")],
                     "nope.json")
    expect_bad_input("prompt: no --conversation", ["prompt", "-m", TOKENIZER], "--conversation")
finally:
    shutil.rmtree(tmp)

rc, out, err = run("toolcall", stdin=b'<|python_tag|>brave_search.call(query="say \\"hi\\"")<|eom_id|>')
j = json.loads(out) if rc == 0 else {}
check("toolcall: built-in call", rc == 0 and list(j) == ["content", "tool_calls", "end", "diagnostics"]
      and j["content"] == "" and j["end"] == "eom"
      and j["tool_calls"] == [{"name": "brave_search", "arguments": {"query": 'say "hi"'},
                               "raw": 'brave_search.call(query="say \\"hi\\"")'}], out + err.encode())
rc, out, err = run("toolcall", stdin=b'Sure. {"name": "f", "parameters": {"a": {"b": 1}}}<|eot_id|>')
j = json.loads(out) if rc == 0 else {}
check("toolcall: JSON call with text", rc == 0 and j["content"] == "Sure. " and j["end"] == "eot"
      and j["tool_calls"][0]["arguments"] == {"a": {"b": 1}}, out)
rc, out, err = run("toolcall", stdin=b"<|python_tag|>print(1)<|eom_id|>")
j = json.loads(out) if rc == 0 else {}
check("toolcall: code_interpreter", rc == 0 and j["tool_calls"][0]["name"] == "code_interpreter"
      and j["tool_calls"][0]["arguments"] == {"code": "print(1)"}, out)
rc, out, err = run("toolcall", "--builtin-tools", "brave_search", stdin=b'<|python_tag|>wolfram_alpha.call(query="x")<|eom_id|>')
j = json.loads(out) if rc == 0 else {}
check("toolcall --builtin-tools", rc == 0 and j["tool_calls"][0]["name"] == "code_interpreter", out)
rc, out, err = run("toolcall", stdin=b'{"name": "f", "parameters": {"a": 1')
j = json.loads(out) if rc == 0 else {}
check("toolcall: truncated call stays text", rc == 0 and j["tool_calls"] == [] and j["end"] == "length"
      and j["content"] == '{"name": "f", "parameters": {"a": 1' and len(j["diagnostics"]) == 1 and out.endswith(b"}\n"), out)
rc, out, err = run("toolcall", stdin=b"\xff\xfe plain")
check("toolcall: invalid UTF-8 is still JSON", rc == 0 and json.loads(out)["tool_calls"] == [], out + err.encode())
expect_bad_input("toolcall: unknown flag", ["toolcall", "--frobnicate"], "frobnicate")

n_fail = results.count(False)
print(f"{len(results) - n_fail} passed, {n_fail} failed")
sys.exit(1 if n_fail else 0)
