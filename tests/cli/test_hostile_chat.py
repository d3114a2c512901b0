#!/usr/bin/env python3
"""herd toolcall and herd prompt against hostile input (docs/tool-calling.md, docs/prompt-format.md):
a megabyte of brackets or broken calls parses in linear time, calls nested 50,000 deep stay text
with a diagnostic, and conversations nested too deep or rendering to gigabytes are exit 2 with
one line naming the file and the limit. Never a crash, a hang or unbounded memory.

Usage: test_hostile_chat.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERD, DATA = sys.argv[1], sys.argv[2]
TOKENIZER = os.path.join(DATA, "tokenizer", "tokenizer.model")
MIB = 1 << 20
results = []


def run(*args, stdin=b""):
    t0 = time.monotonic()
    p = subprocess.run([HERD, *args], input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"), time.monotonic() - t0


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def repeat(piece, n):
    return (piece * (n // len(piece) + 1))[:n]


# Scanning again from every bracket took 9.6 s on 128 KiB of "{" and minutes on a megabyte;
# linear parsing takes well under a second, so 20 s only fails on quadratic behaviour.
hostile = {
    "all {": repeat("{", MIB),
    'all {"': repeat('{"', MIB),
    "all [": repeat("[", MIB),
    "<function= repeated": repeat("<function=", MIB),
    "python tag and brackets": "<|python_tag|>" + repeat("{[", MIB),
    "objects that are not calls, nested": repeat('{"a": 1, "b": ', MIB // 2) + repeat("}", MIB // 2),
}
for name, text in hostile.items():
    rc, out, err, seconds = run("toolcall", stdin=text.encode())
    j = json.loads(out) if rc == 0 else {}
    check(f"toolcall on 1 MiB, {name}: fast, and every byte kept",
          rc == 0 and seconds < 20 and j["tool_calls"] == [] and len(j["diagnostics"]) <= 17
          and j["content"] == text.removesuffix("<|eom_id|>"),
          f"rc={rc} {seconds:.1f}s stderr={err[:200]!r}")

# Nested 50,000 deep: the recursive copy and print of the arguments overflowed the stack.
deep = repeat('{"a": ', 6 * 50000) + "1" + "}" * 50000
for name, text in {
    "JSON call": '{"name": "f", "parameters": ' + deep + "}",
    "function tag": "<function=f>" + deep + "</function>",
    "built-in call": "<|python_tag|>brave_search.call(query=" + "[" * 50000 + "]" * 50000 + ")<|eom_id|>",
}.items():
    rc, out, err, seconds = run("toolcall", stdin=text.encode())
    j = json.loads(out) if rc == 0 else {}
    check(f"toolcall: {name} nested 50,000 deep stays text with a diagnostic",
          rc == 0 and j["tool_calls"] == [] and j["content"] == text.removesuffix("<|eom_id|>")
          and any("deeper than 128 levels" in d for d in j["diagnostics"]),
          f"rc={rc} stderr={err[:200]!r} diagnostics={j.get('diagnostics')}")
ok = '{"name": "f", "parameters": ' + repeat('{"a": ', 6 * 100) + "1" + "}" * 100 + "}"
rc, out, err, _ = run("toolcall", stdin=ok.encode())
check("toolcall: a call nested 100 deep is still a call",
      rc == 0 and len(json.loads(out)["tool_calls"]) == 1, f"rc={rc} {err[:200]!r}")


def expect_bad_conversation(name, doc, must_mention, max_seconds=60):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "conversation.json")
        with open(path, "w") as f:
            f.write(doc)
        rc, out, err, seconds = run("prompt", "-m", TOKENIZER, "--conversation", path)
        lines = err.splitlines()
        check(name, rc == 2 and out == b"" and len(lines) == 1 and lines[0].startswith("herd: error: ")
              and path in lines[0] and must_mention in lines[0] and seconds < max_seconds,
              f"rc={rc} {seconds:.1f}s stderr={err[:300]!r} stdout={out[:100]!r}")


user = '{"role": "user", "content": "hi"}'
deep20k = repeat('{"a": ', 6 * 20000) + "1" + "}" * 20000
expect_bad_conversation("prompt: tools nested 20,000 deep",
                        '{"messages": [' + user + '], "tools": [' + deep20k + "]}", "128 levels")
expect_bad_conversation("prompt: tool-call arguments nested 20,000 deep",
                        '{"messages": [' + user + ', {"role": "assistant", "tool_calls": [{"name": "f", "arguments": '
                        + deep20k + "}]}]}", "128 levels")
expect_bad_conversation("prompt: a tool result nested 20,000 deep",
                        '{"messages": [' + user + ', {"role": "tool", "content": ' + deep20k + "}]}", "128 levels")
# 120 levels of lists around 150,000 zeros: 300 KB that json.dumps(indent=4) writes with ~480
# spaces before every zero (75 MB); it used to be built in full, now the prompt is capped.
wide = '{"x": ' + "[" * 120 + ",".join(["0"] * 150000) + "]" * 120 + "}"
expect_bad_conversation("prompt: indentation cannot blow the prompt up",
                        '{"messages": [' + user + '], "tools": [' + wide + "]}", "64 MiB")

n_fail = results.count(False)
print(f"{len(results) - n_fail} passed, {n_fail} failed")
sys.exit(1 if n_fail else 0)
