#!/usr/bin/env python3
"""`herd serve --docs INDEX`: the retrieval extension. A chat request with "retrieval" gets the last
user message grounded in the index's passages (the same text as `herd chat --docs`, docs/rag.md)
and the passages back as "sources"; without --docs it is a 400.

Usage: test_retrieval.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import serve_fixture as F

HERD, DATA = sys.argv[1], sys.argv[2]
check = F.check
QUESTION = "What is ground by hand over six winters?"


def grounded(question, sources):
    """docs/rag.md's grounded user turn, written out independently of herd's code."""
    s = ("Answer the question using the sources below. Cite each source you use by its number, like [1]. "
         "If the sources do not hold the answer, say so.\n")
    for i, p in enumerate(sources):
        loc = f"{p['path']}:{p['line_begin']}" + (f"-{p['line_end']}" if p["line_end"] != p["line_begin"] else "")
        s += f"\n[{i + 1}] {loc}\n{p['text']}\n"
    return s + "\nQuestion: " + question


tmp = tempfile.mkdtemp(prefix="herd-serve-rag-")
try:
    model = F.make_model(HERD, DATA, os.path.join(tmp, "model"))
    index = os.path.join(tmp, "docs.db")
    subprocess.run([HERD, "index", "build", os.path.join(DATA, "rag", "corpus"), "-o", index, "--max-words", "30"],
                   check=True, capture_output=True, timeout=60)
    hits = json.loads(subprocess.run([HERD, "index", "search", index, QUESTION, "-k", "3", "--json"], check=True,
                                     capture_output=True, timeout=60).stdout)["results"]
    check("the index finds the passage", hits and hits[0]["path"].endswith("guide.md"), hits)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]

    with F.Server(HERD, model, "-t", "1", "--docs", index, "--docs-k", "3") as server:
        status, body = server.request("POST", "/v1/chat/completions",
                                      {"messages": messages, "max_tokens": 3, "retrieval": True})
        sources = body.get("sources", []) if status == 200 else []
        check("retrieval: 200 with the passages as sources", status == 200 and len(sources) == len(hits)
              and [s["path"] for s in sources] == [h["path"] for h in hits]
              and [s["index"] for s in sources] == list(range(1, len(hits) + 1))
              and sources[0]["location"].endswith(f"guide.md:{hits[0]['line_begin']}-{hits[0]['line_end']}"), body)

        # The prompt it ran: the conversation with the user turn grounded, byte for byte as
        # `herd prompt` renders the same turn written out here.
        status, tok = server.request("POST", "/tokenize", {"messages": messages, "retrieval": True})
        conv = os.path.join(tmp, "conv.json")
        with open(conv, "w") as f:
            json.dump({"messages": [messages[0], {"role": "user", "content": grounded(QUESTION, hits)}]}, f)
        want = json.loads(subprocess.run([HERD, "prompt", "-m", model, "--conversation", conv, "--ids"], check=True,
                                         capture_output=True, timeout=60).stdout)
        check("retrieval: the prompt is the grounded turn of docs/rag.md", status == 200 and tok["tokens"] == want,
              (status, tok))
        check("retrieval: usage counts the grounded prompt", body["usage"]["prompt_tokens"] == len(want), body)

        status, body = server.request("POST", "/v1/chat/completions",
                                      {"messages": messages, "max_tokens": 2, "retrieval": {"k": 1}})
        check("retrieval: k per request", status == 200 and len(body.get("sources", [])) == 1, body)
        status, body = server.request("POST", "/v1/chat/completions", {"messages": messages, "max_tokens": 2})
        check("no retrieval asked: no sources", status == 200 and "sources" not in body, body)
        status, body = server.request("POST", "/v1/chat/completions",
                                      {"messages": messages, "max_tokens": 2, "retrieval": {"k": 99}})
        check("retrieval: k out of range is a 400", status == 400 and F.error_shape_ok(body)
              and body["error"]["param"] == "retrieval.k", body)
        status, body = server.request("POST", "/v1/chat/completions", {"messages": messages[:1], "retrieval": True})
        check("retrieval: without a user message, a 400", status == 400 and body["error"]["param"] == "retrieval", body)
        status, body = server.request("POST", "/v1/chat/completions",
                                      {"messages": messages, "max_tokens": 2, "retrieval": True, "stream": True})
        first = json.loads(body.split("\n", 1)[0][len("data: "):]) if status == 200 and isinstance(body, str) else {}
        check("retrieval, streamed: the first chunk carries the sources", len(first.get("sources", [])) == len(hits),
              str(body)[:500])

    with F.Server(HERD, model, "-t", "1") as server:
        status, body = server.request("POST", "/v1/chat/completions", {"messages": messages, "retrieval": True})
        check("retrieval without --docs: a 400 saying how", status == 400 and F.error_shape_ok(body)
              and "--docs" in body["error"]["message"], body)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
F.report()
