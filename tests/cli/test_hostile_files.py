#!/usr/bin/env python3
"""Hostile input files: every file herd reads is refused, when it is not a regular file, too large,
nested too deep or holds nonsense, with exit code 2 and one line naming the file and the reason;
nothing hangs on a FIFO, reads /dev/zero forever or overflows the stack.

Usage: test_hostile_files.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
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

HERD, DATA = os.path.abspath(sys.argv[1]), sys.argv[2]
MODEL = os.path.join(DATA, "models", "gqa4-hd32-untied-llama3")
TOKENIZER = os.path.join(DATA, "tokenizer", "tokenizer.model")
DEEP = "[" * 50000 + "]" * 50000  # far past the 128 levels herd reads; overflowed the stack before
results = []


def run(args, stdin=b"", prefix=()):
    """(rc, stdout, stderr, seconds); rc is None when the command hung past the timeout."""
    start = time.monotonic()
    try:
        p = subprocess.run([*prefix, HERD, *args], input=stdin, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None, b"", "timed out (hung)", time.monotonic() - start
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"), time.monotonic() - start


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def expect_bad_input(name, args, *must_mention, stdin=b"", prefix=()):
    rc, out, err, secs = run(args, stdin, prefix)
    errors = [l for l in err.splitlines() if l.startswith("herd: error:")]
    ok = rc == 2 and len(errors) == 1 and err.rstrip("\n").endswith(errors[0]) and out == b""
    check(name, ok and all(m in errors[0] for m in must_mention),
          f"rc={rc} stderr={err[-600:]!r} stdout={out[:200]!r} ({secs:.1f} s)")


tmp = tempfile.mkdtemp(prefix="herd-hostile-")
os.chmod(tmp, 0o755)  # the unprivileged run below reads beneath it


def model_copy(name, edit_config=None, tokenizer=False):
    d = os.path.join(tmp, name)
    shutil.copytree(MODEL, d)
    if tokenizer:
        shutil.copy(TOKENIZER, os.path.join(d, "tokenizer.model"))
    if edit_config:
        path = os.path.join(d, "config.json")
        config = json.load(open(path))
        edit_config(config)
        json.dump(config, open(path, "w"))
    return d


def replace_file(d, name, how):
    """Turns d/name into something that is not a regular file."""
    p = os.path.join(d, name)
    if os.path.lexists(p):
        os.remove(p)
    if how == "zero":
        os.symlink("/dev/zero", p)
    elif how == "fifo":
        os.mkfifo(p)
    elif how == "dir":
        os.mkdir(p)
    elif how == "loop":
        os.symlink(name + ".other", p)
        os.symlink(name, p + ".other")
    return p


WHY = {"zero": "is a character device, not a regular file", "fifo": "is a FIFO (named pipe), not a regular file",
       "dir": "is a directory, not a file", "loop": "too many levels of symbolic links"}

# --- Files that are not regular: a FIFO used to hang, /dev/zero read 2 GB, a loop exited 1.
for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.model"):
    for how, why in WHY.items():
        d = model_copy(f"{how}-{name}", tokenizer=name == "tokenizer.model")
        p = replace_file(d, name, how)
        if name == "tokenizer.model":
            expect_bad_input(f"tokenizer in a directory: {name} {how}", ["tokenize", "-m", d], p + ": ", why)
        else:
            expect_bad_input(f"model {name} {how}", ["logits", "-m", d, "--ids", "1", "--device", "cpu"], p + ": ", why)
loop = os.path.join(tmp, "loop-model")
os.symlink(loop, loop)
expect_bad_input("model path that is a symlink loop", ["logits", "-m", loop, "--ids", "1"], loop + ": ")
d = model_copy("index-fifo")
expect_bad_input("safetensors index that is a FIFO", ["logits", "-m", d, "--ids", "1"],
                 replace_file(d, "model.safetensors.index.json", "fifo") + ": ", WHY["fifo"])

# Meta's checkpoints: one model-parallel rank's consolidated.NN.pth is not a regular file.
META_PTH = os.path.join(DATA, "models", "gqa8x4-hd16-untied-llama3-meta-pth-mp2")
for how, why in WHY.items():
    d = os.path.join(tmp, f"{how}-meta-pth")
    shutil.copytree(META_PTH, d)
    expect_bad_input(f"Meta consolidated.01.pth {how}", ["logits", "-m", d, "--ids", "1", "--device", "cpu"],
                     replace_file(d, "consolidated.01.pth", how) + ": ", why)

d = model_copy("large-config")
with open(os.path.join(d, "config.json"), "r+b") as f:
    f.truncate(64 * 1024 * 1024 + 1)  # sparse
expect_bad_input("config.json over its cap", ["logits", "-m", d, "--ids", "1"],
                 "config.json: 67108865 bytes, more than the 64 MiB allowed for a JSON config")

# --- Unreadable files (EACCES) and an unlistable directory: exit 2, not 1. Root reads everything,
# so as root this runs herd as nobody.
prefix = ()
if os.geteuid() == 0:
    prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups") if shutil.which("setpriv") else None
if prefix is not None and os.access(HERD, os.X_OK):
    d = model_copy("unreadable-config")
    os.chmod(os.path.join(d, "config.json"), 0)
    expect_bad_input("unreadable config.json", ["logits", "-m", d, "--ids", "1"],
                     "config.json: cannot open: permission denied", prefix=prefix)
    d = model_copy("unlistable-dir")
    os.chmod(d, 0o311)  # entries open, the listing does not
    expect_bad_input("unlistable model directory", ["logits", "-m", d, "--ids", "1"],
                     d + ": cannot list the directory", prefix=prefix)
    os.chmod(d, 0o755)
else:
    print("skip unreadable files: cannot run herd unprivileged here")

# --- config.json: nesting, types and values.
d = model_copy("deep-config")
text = open(os.path.join(d, "config.json")).read().rstrip().rstrip("}") + ', "x": ' + DEEP + "}"
open(os.path.join(d, "config.json"), "w").write(text)
expect_bad_input("config.json nested 50,000 deep", ["logits", "-m", d, "--ids", "1"],
                 "config.json: JSON nested deeper than 128 levels")

BAD_CONFIGS = [
    ("tie_word_embeddings a string", {"tie_word_embeddings": "no"}, 'field "tie_word_embeddings" must be a boolean'),
    ("vocab_size a float", {"vocab_size": 256.5}, 'field "vocab_size" must be an integer'),
    ("dtype a number", {"dtype": 16}, 'field "dtype" must be a string'),
    ("rms_norm_eps 1e40", {"rms_norm_eps": 1e40}, 'field "rms_norm_eps" must be a finite number'),
    ("rms_norm_eps 0", {"rms_norm_eps": 0}, "rms_norm_eps must lie in (0, 1]"),
    ("rms_norm_eps negative", {"rms_norm_eps": -1e-5}, "rms_norm_eps must lie in (0, 1]"),
    ("rope_theta negative", {"rope_parameters": {"rope_type": "default", "rope_theta": -5.0}},
     "rope_theta must be positive"),
    ("rope_theta huge", {"rope_parameters": {"rope_type": "default", "rope_theta": 1e300}},
     'field "rope_parameters.rope_theta" must be a finite number'),
    ("rope factors missing", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}},
     'missing field "rope_parameters.factor"'),
    ("rope factor a string", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": "8",
                                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                  "original_max_position_embeddings": 8192}},
     'field "rope_parameters.factor" must be a number'),
    ("rope_parameters a list", {"rope_parameters": [1]}, 'field "rope_parameters" must be a JSON object'),
    ("bos_token_id beyond 32 bits", {"bos_token_id": 5000000000}, 'field "bos_token_id" must be a token id'),
    ("eos_token_id outside the vocabulary", {"eos_token_id": [2, 256]}, "eos_token_id 256 outside [0, 256)"),
]
for i, (name, fields, expect) in enumerate(BAD_CONFIGS):
    d = model_copy(f"config-{i}", lambda c: c.update(fields))
    expect_bad_input(f"config.json {name}", ["logits", "-m", d, "--ids", "1"], "config.json: ", expect)

# --- generation_config.json: errors name it and the field.
for i, (gen, expect) in enumerate([
        ('{"do_sample": true, "temperature": -1}', 'field "temperature" must be >= 0'),
        ('{"top_p": 7}', 'field "top_p" must lie in (0, 1]'),
        ('{"top_k": -1}', 'field "top_k" must lie in [0, 2^31)'),
        ('{"do_sample": "yes"}', 'field "do_sample" must be a boolean'),
        ('{"x": ' + DEEP + "}", "JSON nested deeper than 128 levels")]):
    d = model_copy(f"gen-{i}")
    open(os.path.join(d, "generation_config.json"), "w").write(gen)
    expect_bad_input(f"generation_config.json {gen[:30]}", ["generate", "-m", d, "--ids", "1", "-n", "1"],
                     "generation_config.json: ", expect)


# --- safetensors: a deeply nested header; a NaN or an infinity in a norm weight.
def safetensors_parts(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), 8 + n, raw


d = model_copy("deep-header")
path = os.path.join(d, "model.safetensors")
header, start, raw = safetensors_parts(path)
text = json.dumps(header)[:-1] + ', "__metadata__": ' + DEEP + "}"
text += " " * ((8 - len(text) % 8) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text.encode() + raw[start:])
expect_bad_input("safetensors header nested 50,000 deep", ["logits", "-m", d, "--ids", "1"],
                 "model.safetensors: JSON nested deeper than 128 levels")

for tensor, value in (("model.norm.weight", "nan"), ("model.layers.1.input_layernorm.weight", "inf"),
                      ("model.layers.0.post_attention_layernorm.weight", "nan")):
    d = model_copy("norm-" + tensor)
    path = os.path.join(d, "model.safetensors")
    header, start, raw = safetensors_parts(path)
    e = header[tensor]
    size = {"F32": 4, "BF16": 2, "F16": 2}[e["dtype"]]
    bits = struct.pack("<f", float(value))
    bits = bits if size == 4 else bits[2:] if e["dtype"] == "BF16" else struct.pack("<e", float(value))
    at = start + e["data_offsets"][0] + 7 * size
    open(path, "wb").write(raw[:at] + bits + raw[at + size:])
    expect_bad_input(f"{value} in {tensor}", ["logits", "-m", d, "--ids", "1"],
                     f'model.safetensors: tensor "{tensor}" holds {value} at index 7')


# --- tokenizer.json and tokenizer_config.json.
def byte_level():
    bs = [*range(33, 127), *range(161, 173), *range(174, 256)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json(**changes):
    t = {"model": {"type": "BPE", "vocab": {c: b for b, c in byte_level().items()}, "merges": []},
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
         "added_tokens": [{"id": 256, "content": "<|eot_id|>"}]}
    t.update(changes)
    return json.dumps(t)


def tokenizer_dir(name, text, config=None):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    open(os.path.join(d, "tokenizer.json"), "w").write(text)
    if config is not None:
        open(os.path.join(d, "tokenizer_config.json"), "w").write(config)
    return d


good = tokenizer_dir("tok-good", tokenizer_json())
rc, out, err, _ = run(["tokenize", "-m", good], b"hi")
check("the hand-made tokenizer.json loads", rc == 0 and out == b"[104,105]\n", f"rc={rc} {out!r} {err!r}")
nested = '{"type": "Sequence", "pretokenizers": [' * 50000 + '{"type": "ByteLevel"}' + "]}" * 50000
d = tokenizer_dir("tok-deep", tokenizer_json(pre_tokenizer=None).replace('"pre_tokenizer": null', '"pre_tokenizer": ' + nested))
expect_bad_input("tokenizer.json with a pre-tokenizer nested 50,000 deep", ["tokenize", "-m", d],
                 "tokenizer.json: JSON nested deeper than 128 levels")
rc, _, err, secs = run(["tokenize", "-m", tokenizer_dir("tok-huge-id", tokenizer_json(
    added_tokens=[{"id": 2000000000, "content": "<|x|>"}]))])
check("huge added-token id refused before anything is sized", rc == 2 and "added token id 2000000000" in err
      and "out of range" in err and secs < 20, f"rc={rc} {err!r} {secs:.1f} s")
d = tokenizer_dir("tok-empty", tokenizer_json(added_tokens=[{"id": 256, "content": ""}]))
expect_bad_input("empty special token names the file", ["tokenize", "-m", d], "tokenizer.json: added token id 256")
d = tokenizer_dir("tok-config-deep", tokenizer_json(), '{"chat_template": ' + DEEP + "}")
expect_bad_input("tokenizer_config.json nested 50,000 deep", ["tokenize", "-m", d],
                 "tokenizer_config.json: JSON nested deeper than 128 levels")
d = tokenizer_dir("tok-config-type", tokenizer_json(), '{"chat_template": 5}')
expect_bad_input("tokenizer_config.json chat_template mistyped", ["tokenize", "-m", d],
                 'tokenizer_config.json: field "chat_template" must be a string')
d = tokenizer_dir("tok-config-zero", tokenizer_json())
expect_bad_input("tokenizer_config.json that is /dev/zero", ["tokenize", "-m", d],
                 replace_file(d, "tokenizer_config.json", "zero") + ": ", WHY["zero"])
expect_bad_input("tokenizer file that is a FIFO", ["tokenize", "-m", replace_file(tmp, "tok.fifo", "fifo")], WHY["fifo"])

# --- stdin JSON of tokenize --jsonl and detokenize.
expect_bad_input("tokenize --jsonl record nested 50,000 deep", ["tokenize", "--jsonl", "-m", good],
                 "stdin line 2: JSON nested deeper than 128 levels",
                 stdin=b'{"text": "a"}\n{"text": "b", "x": ' + DEEP.encode() + b"}\n")
expect_bad_input("detokenize input nested 50,000 deep", ["detokenize", "-m", good],
                 "stdin: JSON nested deeper than 128 levels", stdin=DEEP.encode())

# --- Conversation, tools, texts and eval files.
deep_file = os.path.join(tmp, "deep.json")
open(deep_file, "w").write('{"messages": [], "x": ' + DEEP + "}")
fifo = replace_file(tmp, "file.fifo", "fifo")
chat_model = model_copy("chat-model", tokenizer=True)
for how, path in (("/dev/zero", "/dev/zero"), ("a directory", tmp), ("a FIFO", fifo)):
    expect_bad_input(f"prompt --conversation {how}", ["prompt", "-m", chat_model, "--conversation", path], path + ": ")
    expect_bad_input(f"chat --tools {how}", ["chat", "-m", chat_model, "--tools", path], path + ": ")
    expect_bad_input(f"perplexity -f {how}", ["perplexity", "-m", chat_model, "-f", path], path + ": ")
    expect_bad_input(f"eval --tasks {how}", ["eval", "-m", chat_model, "--tasks", path], path + ": ")
expect_bad_input("prompt --conversation nested 50,000 deep",
                 ["prompt", "-m", chat_model, "--conversation", deep_file], "deep.json: JSON nested deeper than 128")
tools = os.path.join(tmp, "tools.json")
open(tools, "w").write('[{"type": "function", "function": {"name": "f", "parameters": ' + DEEP + "}}]")
expect_bad_input("chat --tools nested 50,000 deep", ["chat", "-m", chat_model, "--tools", tools],
                 "tools.json: JSON nested deeper than 128")

rc, out, err, _ = run(["chat", "-m", chat_model, "--device", "cpu"],
                      f"/load /dev/zero\n/load {tmp}\n/load {fifo}\n/load {deep_file}\n".encode())
lines = [l for l in err.splitlines() if l.startswith("error: ")]
check("chat /load refuses what is not a conversation file, and goes on", rc == 0 and len(lines) == 4
      and WHY["zero"] in lines[0] and WHY["dir"] in lines[1] and WHY["fifo"] in lines[2]
      and "nested deeper than 128" in lines[3], f"rc={rc} {err[-800:]!r}")

item = {"id": 1, "context": "The sky is", "choices": ["blue", "green"], "answer": 0}
tasks = os.path.join(tmp, "tasks.jsonl")
open(tasks, "w").write(json.dumps(item) + "\n" + json.dumps(item | {"id": 2})[:-1] + ', "meta": ' + DEEP + "}\n")
expect_bad_input("eval task with meta nested 50,000 deep", ["eval", "-m", chat_model, "--tasks", tasks],
                 "tasks.jsonl:2: JSON nested deeper than 128")
open(tasks, "w").write(json.dumps(item) + "\n")
results_file = os.path.join(tmp, "results.jsonl")
open(results_file, "w").write('{"id": "1", "task": "tasks", "metrics": ' + DEEP + "}\n")
expect_bad_input("eval --out line nested 50,000 deep",
                 ["eval", "-m", chat_model, "--tasks", tasks, "--out", results_file, "--device", "cpu"],
                 "results.jsonl:1: JSON nested deeper than 128")
expect_bad_input("eval --out that is /dev/zero",
                 ["eval", "-m", chat_model, "--tasks", tasks, "--out", "/dev/zero", "--device", "cpu"], "/dev/zero: ")

shutil.rmtree(tmp, ignore_errors=True)
# --- Quantized checkpoints herd does not read, or whose tensors are broken
# (tests/reference/make_quantized_fixtures.py): each refused, naming the setting or the tensor.
BAD_QUANT = os.path.join(DATA, "quantized", "bad")
for name, mentions in [
        ("awq-gemv", ["config.json", "quantization_config.version is \"gemv\""]),
        ("awq-group-48", ["config.json", "quantization_config.group_size is 48"]),
        ("ct-int4", ["config.json", "quantization_config.format is \"pack-quantized\""]),
        ("gptq-8bit", ["config.json", "quantization_config.bits is 8"]),
        ("fp8-nan", ["model.safetensors", "model.layers.0.mlp.down_proj", "NaN at row 3, column 5"]),
        ("fp8-no-scale", ["missing tensor \"model.layers.0.self_attn.k_proj.weight_scale\""]),
        ("gptq-bad-gidx", ["model.layers.0.mlp.up_proj", "g_idx[7] is 3"])]:
    expect_bad_input(f"quantized checkpoint {name}",
                     ["logits", "-m", os.path.join(BAD_QUANT, name), "--ids", "1,2", "--device", "cpu"], *mentions)

print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
