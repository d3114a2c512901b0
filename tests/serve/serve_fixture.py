"""What the `herd serve` tests share: models made on the spot, a server on a free loopback port,
the test virtual environment, and the check() report.

Usage of a test: test_X.py HERD_BINARY TESTS_DATA_DIR. Tests that import the `openai` client call
use_venv() first: it re-runs the test under tests/serve/venv.sh's environment, or exits 77 (ctest's
skip code here) when that cannot be made.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
results = []

EOT, EOM = 128009, 128008  # <|eot_id|>, <|eom_id|> in Llama 3's vocabulary


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {str(detail)[:2000]}"), flush=True)


def report():
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def use_venv():
    """Re-runs this script with the virtual environment's Python (openai, schemathesis)."""
    if os.environ.get("HERD_SERVE_IN_VENV") == "1":
        return os.path.dirname(os.path.dirname(sys.executable))
    p = subprocess.run(["bash", os.path.join(HERE, "venv.sh")], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        skip(p.stderr.strip() or f"venv.sh exited with {p.returncode}")
    venv = p.stdout.strip()
    os.environ["HERD_SERVE_IN_VENV"] = "1"
    os.execv(os.path.join(venv, "bin", "python"), [os.path.join(venv, "bin", "python"), *sys.argv])


def make_model(herd, data, out, context=4096, forced=None, layers=1):
    """A random model with Llama 3's full vocabulary and tokenizer (so Llama 3.1's prompt format).

    forced: a token id the model then always predicts, whatever the input: every residual
    stream is the same vector (equal embeddings; attention and MLP write nothing), and only that
    token's output row is not zero. A deterministic "model" for testing what the server makes of
    a completion: with a continued final assistant message, the reply is exactly that text.
    """
    os.makedirs(out, exist_ok=True)
    cfg = os.path.join(out, "make-config.json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 16,
                   "intermediate_size": 32, "num_hidden_layers": layers, "num_attention_heads": 2,
                   "num_key_value_heads": 1, "max_position_embeddings": context, "rms_norm_eps": 1e-5,
                   "rope_theta": 500000.0, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}, f)
    model = os.path.join(out, "model")
    p = subprocess.run([herd, "make-model", "--config", cfg, "-o", model], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    shutil.copy(os.path.join(data, "tokenizer", "tokenizer.model"), os.path.join(model, "tokenizer.model"))
    if forced is not None:
        force_token(os.path.join(model, "model.safetensors"), forced)
    return model


def force_token(path, token):
    one, eight = struct.pack("<H", 0x3F80), struct.pack("<H", 0x4100)  # 1.0 and 8.0 in bfloat16
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, t in header.items():
            if name == "__metadata__":
                continue
            assert t["dtype"] == "BF16", t
            begin, end = t["data_offsets"]
            count = (end - begin) // 2
            if name == "model.embed_tokens.weight" or name.endswith("norm.weight"):
                data = one * count
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                data = b"\0\0" * count
            elif name == "lm_head.weight":
                hidden = t["shape"][1]
                data = b"\0\0" * (token * hidden) + eight * hidden + b"\0\0" * (count - (token + 1) * hidden)
            else:
                continue
            f.seek(base + begin)
            f.write(data)


class Server:
    """`herd serve` on a free loopback port; its stderr lines are kept in .lines."""

    def __init__(self, herd, model, *flags, env=None, timeout=60):
        self.proc = subprocess.Popen([herd, "serve", "-m", model, "--device", "cpu", "--port", "0", *flags],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env, text=True, errors="replace")
        self.lines = []
        self.port = None
        started = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"at http://[^:]+:(\d+)/v1", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    started.set()
            started.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not started.wait(timeout) or self.port is None:
            self.proc.kill()
            raise RuntimeError("herd serve did not start: " + "\n".join(self.lines))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(5)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, parsed JSON or text) of one request; body: bytes, str or a JSON value."""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        h = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def metric(self, name, headers=None):
        _, text = self.request("GET", "/metrics", headers=headers)
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
        return float(m.group(1)) if m else None

    def wait_blocks_free(self, timeout=10, headers=None):
        """True once no KV block is held by a request (herd_kv_blocks_used 0)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("herd_kv_blocks_used", headers) == 0:
                return True
            time.sleep(0.05)
        return False


def error_shape_ok(body):
    """OpenAI's error body: {"error": {"message": str, "type": str, "param": str|null, "code": str|null}}."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return False
    e = body["error"]
    return (set(e) == {"message", "type", "param", "code"} and isinstance(e["message"], str) and e["message"]
            and isinstance(e["type"], str) and (e["param"] is None or isinstance(e["param"], str))
            and (e["code"] is None or isinstance(e["code"], str)))
