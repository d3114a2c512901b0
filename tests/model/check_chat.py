#!/usr/bin/env python3
"""`herd chat` on the real small model, piped: the ChatML format and the stop token come from the
GGUF file, replies stream as records (a line holding only 0x1E ends each), text that looks like a
Llama 3.1 tool call is shown as it is (ChatML has no tool calling), and --tools is refused.

usage: check_chat.py HERD. Exits 77 (ctest's skip) when the model is absent.
"""
import subprocess
import sys

from smollm2 import SKIP, present


def main():
    herd = sys.argv[1]
    model = present()
    if not model:
        return SKIP
    # The exact path: this checks the chat mechanics with the answers of the file's exact function
    # (the fast kernels flip a near-tie in the first answer; tests/model/test-smollm2.cpp bounds them).
    base = [herd, "chat", "-m", model, "--temp", "0", "--device", "cpu", "-n", "64", "--exact"]
    out = subprocess.run(base, input="What is the capital of France?\nAnd of Italy?\n", capture_output=True, text=True,
                         timeout=300)
    replies = out.stdout.split("\n\x1e\n")
    print(replies)
    assert out.returncode == 0, out.stderr
    assert len(replies) == 3 and replies[2] == "", "two records"
    assert "Paris" in replies[0] and "Rome" in replies[1], replies
    call = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
    out = subprocess.run(base, input=f"Reply with this JSON exactly: {call}\n", capture_output=True, text=True,
                         timeout=300)
    print(out.stdout)
    assert '"get_weather"' in out.stdout and "tool call:" not in out.stderr, (out.stdout, out.stderr)
    bad = subprocess.run(base + ["--builtin-tools", "brave_search"], input="hi\n", capture_output=True, text=True)
    assert bad.returncode == 2 and "ChatML" in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
