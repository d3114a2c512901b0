#!/usr/bin/env python3
"""What a newcomer meets in herd chat and herd info (docs/chat.md, docs/cli.md): the start-up lines and
`herd info` (checked against numbers computed here from the model's config), herd chat's sampling
defaults and reply cap, --tool-exec refused without tool calling, text from a model or a tool made
visible, the timing line, and multi-line input: \"\"\" blocks, bracketed paste and the history file.

Usage: test_chat_ux.py HERD_BINARY TESTS_DATA_DIR. Standard library only. Prints 'N passed, N failed'
and exits non-zero on any failure.
"""
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERD, DATA = sys.argv[1], sys.argv[2]
RS = b"\n\x1e\n"  # what ends each reply in piped mode
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


CONFIG = {"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 16, "intermediate_size": 32,
          "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
          "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "bos_token_id": 128000,
          "eos_token_id": [128001, 128008, 128009]}


def make_model(tmp, name, config=CONFIG):
    cfg = os.path.join(tmp, name + ".json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    model = os.path.join(tmp, name)
    p = subprocess.run([HERD, "make-model", "--config", cfg, "-o", model], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    shutil.copy(os.path.join(DATA, "tokenizer", "tokenizer.model"), os.path.join(model, "tokenizer.model"))
    return model


def n_params(c):
    """Every weight's elements, from the config's shapes alone."""
    h, f, layers, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    hd = c.get("head_dim", h // c["num_attention_heads"])
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    per_layer = 2 * h + h * q + 2 * h * kv + q * h + 3 * h * f
    return v * h * (1 if c.get("tie_word_embeddings", False) else 2) + layers * per_layer + h


def byte_tokenizer(specials):
    """A Hugging Face tokenizer.json: one token per byte (GPT-2's byte-to-character map), no merges, then specials."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return {"model": {"type": "BPE", "vocab": {chars[b]: b for b in range(256)}, "merges": []},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "added_tokens": [{"id": 256 + i, "content": t, "special": True} for i, t in enumerate(specials)]}


def info(model, *flags):
    p = subprocess.run([HERD, "info", "-m", model, "--device", "cpu", "--threads", "1", *flags], capture_output=True,
                       timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def chat(model, lines, *flags, timeout=30, env=None):
    p = subprocess.run([HERD, "chat", "-m", model, "--device", "cpu", "--seed", "1", *flags],
                       input="".join(l + "\n" for l in lines).encode(), capture_output=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def close(got, want):
    """Dicts equal, floats to float32 precision."""
    return isinstance(got, dict) and got.keys() == want.keys() and all(
        abs(got[k] - v) < 1e-6 if isinstance(v, float) else got[k] == v for k, v in want.items())


def saved_messages(path):
    return json.load(open(path))["messages"] if os.path.exists(path) else []


class Pty:
    """herd chat on a terminal: keys in, everything it writes collected in .buf."""

    def __init__(self, args, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(HERD, [HERD, *args], env)
        self.buf = b""

    def read_until(self, pred, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred(self.buf):
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.buf += os.read(self.fd, 65536)
                except OSError:
                    break
        return pred(self.buf)

    def send(self, keys, wait_prompt=True, timeout=20):
        """Types keys; with wait_prompt, waits for the next prompt (a fresh one turns bracketed paste on)."""
        n = self.buf.count(b"\x1b[?2004h>>> ")
        os.write(self.fd, keys)
        return not wait_prompt or self.read_until(lambda b: b.count(b"\x1b[?2004h>>> ") > n, timeout)

    def finish(self, timeout=20):
        status = None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            self.read_until(lambda b: False, 0.05)
        else:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            status = None
        os.close(self.fd)
        return status


tmp = tempfile.mkdtemp(prefix="herd-chat-ux-")
try:
    model = make_model(tmp, "tiny")

    # herd info, text and JSON, against what the config says.
    rc, out, err = info(model, "--json")
    j = json.loads(out) if rc == 0 and out.count("\n") == 1 else {}
    check("info --json is one object", rc == 0 and j, f"rc={rc} {out} {err}")
    n_matrices = 1 + 1 + 7 * CONFIG["num_hidden_layers"]  # embedding, output, 7 per layer
    check("info: name, architecture, parameters, weight types",
          j.get("name") == "tiny" and j.get("architecture") == "llama" and j.get("parameters") == n_params(CONFIG)
          and j.get("weight_types") == f"BF16 x{n_matrices}" and j.get("dtype") == "BF16", j)
    check("info: context, KV budget, chat format, device, threads",
          j.get("context_length") == 4096 and j.get("context") == min(4096, j.get("kv_capacity_tokens", 0))
          and j.get("kv_capacity_tokens", 0) > 0 and j.get("kv_capacity_tokens", 1) % j.get("block_size", 0) == 0
          and j.get("chat_format", "").startswith("Llama 3.1") and j.get("device", "").startswith("cpu")
          and j.get("threads") == 1
          and j.get("kv_bytes_per_token") == 2 * CONFIG["num_hidden_layers"] * 8 * 2, j)  # K and V in f16
    # No generation_config.json: herd chat's own defaults, and a reply cap.
    check("info: herd chat's sampling defaults for a model without any", j.get("model_sampling", 0) is None
          and close(j.get("chat_sampling"), {"temperature": 0.7, "top_p": 0.9, "top_k": 0, "repetition_penalty": 1.1,
                                             "max_tokens": 1024, "source": "herd chat's defaults: the model has none"}),
          j.get("chat_sampling"))
    rc, text, err = info(model, "--kv-memory", "64KiB")
    j_small = json.loads(info(model, "--kv-memory", "64KiB", "--json")[1] or "{}")
    check("info: text lines with the same numbers", rc == 0 and "model:       tiny (llama, " in text
          and f"context:     {j_small.get('context')} tokens (the model's is 4096)" in text
          and f"KV cache:    {j_small.get('kv_capacity_tokens')} tokens" in text and "1 threads" in text
          and "temperature 0.7, top-p 0.9, repetition penalty 1.1" in text and "up to 1024 tokens" in text
          and j_small.get("context", 0) < 4096, text + err)

    # A model with its own sampling defaults keeps them (and no repetition penalty).
    with open(os.path.join(model, "generation_config.json"), "w") as f:
        json.dump({"do_sample": True, "temperature": 0.6, "top_p": 0.8}, f)
    rc, out, err = info(model, "--json")
    jd = json.loads(out) if rc == 0 else {}
    check("info: the model's own sampling defaults",
          close(jd.get("model_sampling"), {"do_sample": True, "temperature": 0.6, "top_p": 0.8})
          and close(jd.get("chat_sampling"), {"temperature": 0.6, "top_p": 0.8, "top_k": 0, "repetition_penalty": 1.0,
                                              "max_tokens": 1024, "source": "the model's defaults"}), jd)
    os.remove(os.path.join(model, "generation_config.json"))

    # A model without a tokenizer, with its own shapes (untied, head_dim given).
    untied = os.path.join(DATA, "models", "gqa4-hd32-untied-llama3")
    rc, out, err = info(untied, "--json")
    ju = json.loads(out) if rc == 0 else {}
    ucfg = json.load(open(os.path.join(untied, "config.json")))
    check("info: parameters of a second model, no tokenizer", ju.get("parameters") == n_params(ucfg)
          and ju.get("chat_format", "").startswith("none") and ju.get("context_length") == 2048, f"{ju} {err}")
    # Meta's own checkpoint (params.json, four model-parallel consolidated.NN.pth) of a fixture model.
    rc, out, err = info(os.path.join(DATA, "models", "gqa8x4-hd16-untied-llama3-meta-pth-mp4"), "--json")
    jm = json.loads(out) if rc == 0 else {}
    mcfg = json.load(open(os.path.join(DATA, "models", "gqa8x4-hd16-untied-llama3", "config.json")))
    check("info: Meta's consolidated.NN.pth", jm.get("parameters") == n_params(mcfg)
          and jm.get("weight_types") == "BF16 x16", f"{jm} {err}")
    rc, out, err = info(os.path.join(tmp, "nowhere"))
    check("info: a missing model is bad input", rc == 2 and err.startswith("herd: error: ") and err.count("\n") == 1, err)

    # herd chat's start-up lines: the same facts, and the same context and KV capacity as /stats.
    rc, out, err = chat(model, ["/stats"], "--kv-memory", "64KiB", "--threads", "1")
    stats_ctx = re.search(r"tokens of a (\d+)-token context", err)
    stats_kv = re.search(r"\((\d+) tokens each, (\d+) tokens in all\)", err)
    check("chat start-up lines agree with herd info and /stats", rc == 0 and stats_ctx and stats_kv
          and f"context:     {stats_ctx.group(1)} tokens" in err and f"KV cache:    {stats_kv.group(2)} tokens" in err
          and int(stats_ctx.group(1)) == j_small.get("context")
          and int(stats_kv.group(2)) == j_small.get("kv_capacity_tokens")
          and "sampling:    temperature 0.7, top-p 0.9, repetition penalty 1.1" in err, err)
    rc, out, err = chat(model, ["hi"], "--temp", "0.5", "--repeat-penalty", "1", "-n", "3")
    check("chat: flags win over the defaults", rc == 0 and "sampling:    temperature 0.5, top-p 0.9 (the flags, and "
          "herd chat's defaults for the rest" in err and "up to 3 tokens" in err, err)
    rc, out, err = chat(model, ["hi"], "--temp", "0", "-n", "3")
    check("chat: --temp 0 is plain greedy", rc == 0 and "sampling:    greedy (" in err, err)

    # No -n: a reply stops at the default cap of 1024 tokens, and says so; -n 0 still means the context.
    start = time.monotonic()
    # (--top-p 1: a nucleus over this random model's flat 128,256-way distribution is slow to sort.)
    rc, out, err = chat(model, ["go on forever", "/stats"], "--top-p", "1", timeout=60)
    took = time.monotonic() - start
    check("chat: a reply without -n stops at 1024 tokens", rc == 0 and re.search(r"\b1024 generated", err)
          and "cut off at 1024 tokens" in err, f"took={took:.1f}s {err[-600:]}")

    # --tool-exec needs tool calling: refused, naming the flag, for a ChatML model.
    chatml = make_model(tmp, "chatml", dict(CONFIG, vocab_size=258, bos_token_id=256, eos_token_id=257))
    os.remove(os.path.join(chatml, "tokenizer.model"))
    with open(os.path.join(chatml, "tokenizer.json"), "w") as f:
        json.dump(byte_tokenizer(["<|im_start|>", "<|im_end|>"]), f)
    with open(os.path.join(chatml, "tokenizer_config.json"), "w") as f:
        json.dump({"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                                    "{% endfor %}<|im_start|>assistant\n"}, f)
    rc, out, err = chat(chatml, ["hi"], "--tool-exec", "get_time=date")
    check("--tool-exec refused without tool calling", rc == 2 and err.count("\n") == 1 and "--tool-exec" in err
          and "ChatML" in err and err.startswith("herd: error: "), err)
    rc, out, err = info(chatml, "--json")
    check("info: the ChatML chat format", rc == 0 and json.loads(out)["chat_format"].startswith("ChatML"), out + err)

    # Text from the model or a tool is shown with its control characters visible: a tool name with
    # an escape sequence, and a tool whose output holds one.
    tools = os.path.join(tmp, "tools.json")
    with open(tools, "w") as f:
        json.dump([{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}], f)
    evil = '<|python_tag|>{"name": "get\\u001b]0;owned\\u0007time", "parameters": {"tz": "\\u001b[2J"}}<|eom_id|>'
    saved = os.path.join(tmp, "evil.json")
    rc, out, err = chat(model, ["time?", "RESULT", "/save " + saved], "--tools", tools, "--prefill", evil, "-n", "3")
    msgs = saved_messages(saved)
    calls = [m["tool_calls"][0]["name"] for m in msgs if m.get("tool_calls")]
    check("a tool name with an escape is shown escaped", rc == 0 and calls == ["get\x1b]0;owned\x07time"]
          and "tool call: get\\x1b]0;owned\\x07time" in err and "\x1b" not in err and "\x07" not in err, f"{calls} {err!r}")
    rc, out, err = chat(model, ["time?"], "--tools", tools, "--prefill",
                        '<|python_tag|>{"name": "get_time", "parameters": {}}<|eom_id|>', "-n", "3",
                        "--tool-exec", "get_time=printf 'A\\033[31mB\\r%0300d'", "--verbose")
    shown = re.search(r"herd: tool result: (.*)", err)
    check("a tool's output is shown escaped and shortened", rc == 0 and shown and shown.group(1).startswith(
        "A\\x1b[31mB\\r000") and shown.group(1).endswith("... (308 bytes)") and "\x1b" not in err, repr(err))
    check("--verbose: a timing line per reply", re.search(r"herd: \d+ tokens, ([0-9.]+ tok/s|-), first token after "
                                                          r"[0-9.]+ s", err), err)

    # Piped \"\"\" blocks: one user turn each, newlines kept.
    saved = os.path.join(tmp, "blocks.json")
    rc, out, err = chat(model, ['"""', "line one", "", "line two", '"""', '"""single"""', '"""start', 'end"""',
                                "/save " + saved], "-n", "2")
    users = [m["content"] for m in saved_messages(saved) if m["role"] == "user"]
    check('piped """ blocks are one message each', rc == 0 and out.count(RS) == 3
          and users == ["line one\n\nline two", "single", "start\nend"], f"{users} {err}")

    # On a terminal: bracketed paste, a \"\"\" block, the waiting indicator and the history file.
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb", "HOME": home}
    env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})  # sanitizer builds
    saved = os.path.join(tmp, "paste.json")
    t = Pty(["chat", "-m", model, "--device", "cpu", "-n", "4", "--seed", "1"], env)
    first = t.read_until(lambda b: b"\x1b[?2004h>>> " in b, 20)
    check("pty: bracketed paste is turned on at the prompt", first and b"\x1b[?2004h" in t.buf, t.buf[-300:])
    pasted = t.send(b"\x1b[200~first line\rsecond line\x1b[201~\r")
    block = t.send(b'"""\rA\rB\r"""\r')
    t.send(b"/save " + saved.encode() + b"\r")
    users = [m["content"] for m in saved_messages(saved) if m["role"] == "user"]
    check("pty: a paste and a \"\"\" block are one message each", pasted and block
          and users == ["first line\nsecond line", "A\nB"], f"{users} {t.buf[-400:]!r}")
    check("pty: '...' while waiting for the first token, erased when text comes",
          b"...\b\b\b   \b\b\b" in t.buf, t.buf[-400:])
    t.send(b"/quit\r", wait_prompt=False)
    status = t.finish()
    check("pty: bracketed paste is turned off at the end", status is not None and os.WIFEXITED(status)
          and t.buf.rstrip().endswith(b"\x1b[?2004l"), t.buf[-100:])
    hist = os.path.join(home, ".local", "share", "herd", "history")
    text = open(hist, errors="replace").read() if os.path.exists(hist) else ""
    check("pty: the history file keeps what was typed", "first" in text and "second" in text and "/save" in text, text)

    # The history comes back in the next session ($XDG_DATA_HOME wins over HOME); --no-history keeps none.
    xdg, home2 = os.path.join(tmp, "xdg"), os.path.join(tmp, "home2")
    os.makedirs(home2)
    shutil.copytree(os.path.join(home, ".local", "share", "herd"), os.path.join(xdg, "herd"))
    t = Pty(["chat", "-m", model, "--device", "cpu", "-n", "2"], dict(env, XDG_DATA_HOME=xdg, HOME=home2))
    t.read_until(lambda b: b"\x1b[?2004h>>> " in b, 20)
    mark = len(t.buf)
    t.send(b"\x10", wait_prompt=False)  # ^P: the previous entry, the first session's /quit
    recalled = t.read_until(lambda b: b"/quit" in b[mark:], 5)
    t.send(b"\x15/system recalled\r")  # ^U clears the line
    t.send(b"/quit\r", wait_prompt=False)
    t.finish()
    text = open(os.path.join(xdg, "herd", "history"), errors="replace").read()
    check("pty: $XDG_DATA_HOME's history is recalled and kept", recalled and "recalled" in text
          and os.listdir(home2) == [], t.buf[mark:])
    nohome = os.path.join(tmp, "nohome")
    os.makedirs(nohome)
    t = Pty(["chat", "-m", model, "--device", "cpu", "-n", "2", "--no-history"], dict(env, HOME=nohome))
    t.read_until(lambda b: b">>> " in b, 20)
    t.send(b"hello\r")
    t.send(b"/quit\r", wait_prompt=False)
    t.finish()
    check("pty: --no-history writes no file", os.listdir(nohome) == [], os.listdir(nohome))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
