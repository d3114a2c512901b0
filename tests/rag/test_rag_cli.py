#!/usr/bin/env python3
"""herd index and herd chat's grounding and built-in tools end to end (docs/rag.md, docs/tools.md), on the
corpus in tests/data/rag/corpus and a tiny random model with Llama 3's vocabulary.

Usage: test_rag_cli.py HERD_BINARY TESTS_DATA_DIR. Standard library only. Prints 'N passed, N failed' and
exits non-zero on any failure.
"""
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

HERD, DATA = sys.argv[1], sys.argv[2]
results = []


def check(name, cond, detail=""):
    cond = bool(cond)
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def run(*args, stdin=None, timeout=60):
    p = subprocess.run([HERD, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def search(index, query, k=5):
    rc, out, err = run("index", "search", index, query, "-k", str(k), "--json")
    return rc, (json.loads(out)["results"] if rc == 0 else []), err


def one_line_error(rc, err, *words):
    return rc == 2 and err.startswith("herd: error: ") and err.count("\n") == 1 and all(w in err for w in words)


def make_model(tmp):
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 16,
                   "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                   "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                   "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}, f)
    model = os.path.join(tmp, "model")
    rc, _, err = run("make-model", "--config", cfg, "-o", model)
    assert rc == 0, err
    shutil.copy(os.path.join(DATA, "tokenizer", "tokenizer.model"), os.path.join(model, "tokenizer.model"))
    return model


def chat(model, lines, *flags, timeout=60):
    rc, out, err = run("chat", "-m", model, "--device", "cpu", "--seed", "1", "-n", "4", *flags,
                       stdin="".join(l + "\n" for l in lines).encode(), timeout=timeout)
    return rc, out, err


def saved_messages(path):
    return json.load(open(path))["messages"] if os.path.exists(path) else []


tmp = tempfile.mkdtemp(prefix="herd-rag-")
try:
    corpus = os.path.join(tmp, "corpus")
    shutil.copytree(os.path.join(DATA, "rag", "corpus"), corpus)
    os.mkfifo(os.path.join(corpus, "pipe.txt"))
    with open(os.path.join(corpus, "large.txt"), "w") as f:
        f.write("oversized " * 400)
    with open(os.path.join(corpus, ".hidden.md"), "w") as f:
        f.write("hiddenword\n")
    # Words of the exact phrase below, scattered: BM25 must still rank the phrase's passage first.
    with open(os.path.join(corpus, "noise.txt"), "w") as f:
        f.write("hand over the ground, six times by winters.\n\nwinters six hand ground over\n")
    index = os.path.join(tmp, "docs.db")

    # --- build
    rc, out, err = run("index", "build", corpus, "-o", index, "--max-words", "30", "--max-file-size", "2KiB")
    check("build: exit 0 and a summary", rc == 0 and "files: 6 added, 0 updated, 0 unchanged, 0 removed, 3 skipped" in out,
          out + err)
    check("build: binary file skipped with its reason", "archive.bin: binary" in out, out)
    check("build: FIFO skipped", "pipe.txt: not a regular file" in out, out)
    check("build: oversized file skipped", "large.txt: larger than the limit of 2048 bytes" in out, out)
    check("build: a progress line on stderr", "indexing: 7/7 files" in err, err)
    rc, hits, err = search(index, "hiddenword")
    check("build: hidden files are left out", rc == 0 and hits == [], hits)

    # --- search
    rc, hits, err = search(index, "ground by hand over six winters")
    check("BM25: the exact phrase ranks its passage first", rc == 0 and hits and hits[0]["path"].endswith("guide.md")
          and hits[0]["line_begin"] == 6 and "six winters" in hits[0]["text"], hits)
    rc, hits, err = search(index, "winters six hand")
    check("BM25: without a phrase, the denser passage wins", rc == 0 and hits and hits[0]["path"].endswith("noise.txt")
          and all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:])), hits)
    rc, hits, _ = search(index, "Tobias Wren lighthouse")
    check("HTML: text found, entities decoded", hits and hits[0]["path"].endswith("page.html")
          and "Tobias Wren & he kept" in hits[0]["text"] and "<large or small>" in hits[0]["text"], hits)
    rc, hits, _ = search(index, "secretscriptword zanzibarstyle commentword")
    check("HTML: script, style and comments are not indexed", rc == 0 and hits == [], hits)
    rc, hits, _ = search(index, "crème brûlée")
    check("unicode text found", hits and hits[0]["path"].endswith("unicode.txt"), hits)
    rc, hits, _ = search(index, "tokenize_ledger pipes")
    check("source code found with its lines", hits and hits[0]["path"].endswith("parser.py")
          and hits[0]["line_begin"] <= 4 <= hits[0]["line_end"], hits)
    # A paragraph over the passage budget is cut between its lines, which stay as they were.
    para_dir = os.path.join(tmp, "para")
    os.makedirs(para_dir)
    para = [f"line{i} " + " ".join(f"w{i}x{j}" for j in range(9)) for i in range(5)]  # 10 words each
    with open(os.path.join(para_dir, "para.txt"), "w") as f:
        f.write("\n".join(para) + "\n")
    rc, _, err = run("index", "build", para_dir, "-o", os.path.join(tmp, "para.db"), "--max-words", "30")
    rc, hits, _ = search(os.path.join(tmp, "para.db"), "line0")
    check("a long paragraph's lines are kept as written", rc == 0 and hits and hits[0]["text"] == "\n".join(para[:3])
          and (hits[0]["line_begin"], hits[0]["line_end"]) == (1, 3), hits)
    rc, out, _ = run("index", "search", index, "mirror telescope", "-k", "1")
    check("search: text output has path:lines and score", rc == 0 and out.startswith("1. ")
          and "guide.md:6-9 (score " in out, out)

    # --- hostile queries: never a syntax error, never an injection
    hostile = ['"', '""', "AND OR NOT", "NEAR(mirror telescope, 2)", "*", "^mirror", "text:mirror", "mirror*",
               "'; DROP TABLE files; --", "(((", "a\x01b", "\x1b[31m", "-mirror", "{text}: mirror", "",
               "mirror " * 15000, "x" * 120000]
    bad = []
    for q in hostile:
        rc, out, err = run("index", "search", "--json", "--", index, q)
        if rc != 0 or not isinstance(json.loads(out)["results"], list):
            bad.append((q[:40], rc, err))
    check("hostile queries: exit 0 with a result list", bad == [], bad)
    rc, hits, _ = search(index, "mirror")
    check("hostile queries: the index is intact", rc == 0 and hits, hits)

    # --- incremental
    rc, out, _ = run("index", "build", corpus, "-o", index, "--max-words", "30", "--max-file-size", "2KiB")
    check("rebuild: nothing changed", rc == 0 and "0 added, 0 updated, 6 unchanged, 0 removed" in out, out)
    with open(os.path.join(corpus, "guide.md"), "a") as f:
        f.write("\n## Café\n\nThe café serves quillberry tea.\n")
    os.remove(os.path.join(corpus, "unicode.txt"))
    os.utime(os.path.join(corpus, "page.html"), (time.time() + 5, time.time() + 5))  # same content, new mtime
    rc, out, _ = run("index", "build", corpus, "-o", index, "--max-words", "30", "--max-file-size", "2KiB")
    check("rebuild: changed file updated, deleted one removed, touched one kept",
          rc == 0 and "0 added, 1 updated, 4 unchanged, 1 removed" in out, out)
    rc, hits, _ = search(index, "quillberry")
    check("rebuild: new text is found", hits and hits[0]["path"].endswith("guide.md"), hits)
    rc, hits, _ = search(index, "brûlée")
    check("rebuild: a deleted file's passages are gone", rc == 0 and hits == [], hits)
    rc, out, _ = run("index", "build", os.path.join(corpus, "sub"), "-o", index, "--max-words", "30")
    check("a build of one directory keeps the others' files", rc == 0 and "0 removed" in out, out)

    # --- refusals
    newer = os.path.join(tmp, "newer.db")
    shutil.copy(index, newer)
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    rc, _, err = run("index", "search", newer, "mirror")
    check("newer schema refused by search", one_line_error(rc, err, "newer.db", "schema 99"), err)
    rc, _, err = run("index", "build", corpus, "-o", newer)
    check("newer schema refused by build", one_line_error(rc, err, "newer"), err)
    rc, _, err = run("index", "search", os.path.join(corpus, "guide.md"), "mirror")
    check("a text file is not an index", one_line_error(rc, err, "guide.md", "not"), err)
    rc, _, err = run("index", "search", os.path.join(tmp, "missing.db"), "mirror")
    check("a missing index", one_line_error(rc, err, "missing.db"), err)
    rc, _, err = run("index", "build", os.path.join(tmp, "nope"), "-o", index)
    check("a missing input path", one_line_error(rc, err, "nope", "does not exist"), err)

    # --- concurrent readers while a rebuild writes (WAL)
    big = os.path.join(tmp, "big")
    os.mkdir(big)
    for i in range(1500):
        with open(os.path.join(big, f"doc{i:04}.txt"), "w") as f:
            f.write(f"Document {i} about the copperleaf archive.\n\n" + ("filler words here. " * 60 + "\n\n") * 3)
    big_index = os.path.join(tmp, "big.db")
    rc, out, err = run("index", "build", big, "-o", big_index, timeout=120)
    check("big corpus built", rc == 0 and "1500 added" in out, out + err)
    writer = subprocess.Popen([HERD, "index", "build", big, "-o", big_index, "--max-words", "25"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    during, failures = 0, []
    while writer.poll() is None:
        rc, hits, err = search(big_index, "copperleaf archive", k=3)
        if writer.poll() is None:
            during += 1
        if rc != 0 or len(hits) != 3:
            failures.append((rc, err))
    wout, _ = writer.communicate()
    check("searches during a rebuild all succeed", failures == [] and during >= 1,
          f"{during} searches during the build, failures {failures[:3]}")
    check("the rebuild re-cut every file", b"1500 updated" in wout, wout)

    # --- chat: grounding, brave_search from the index, wolfram_alpha, code_interpreter
    model = make_model(tmp)
    saved = os.path.join(tmp, "grounded.json")
    rc, out, err = chat(model, ["How large is the telescope mirror?", "/save " + saved], "--docs", index)
    msgs = saved_messages(saved)
    user = msgs[0]["content"] if msgs else ""
    check("--docs: the user turn holds numbered sources and the question",
          rc == 0 and user.startswith("Answer the question using the sources below.")
          and "\n[1] " + os.path.join(corpus, "guide.md") + ":6-9\n" in user
          and user.endswith("\nQuestion: How large is the telescope mirror?"), user)
    check("--docs: sources listed after the reply", "sources:" in err and "[1] " + os.path.join(corpus, "guide.md")
          in err, err)
    rc, _, err = chat(model, ["hi"], "--docs", os.path.join(tmp, "missing.db"))
    check("--docs with a missing index", one_line_error(rc, err, "missing.db"), err)

    saved = os.path.join(tmp, "brave.json")
    query = "mirror telescope"
    call = f'<|python_tag|>brave_search.call(query="{query}")<|eom_id|>'
    rc, out, err = chat(model, ["look it up", "/save " + saved], "--builtin-tools", "brave_search", "--docs", index,
                        "--prefill", call, "--docs-k", "2")
    msgs = saved_messages(saved)
    rc2, hits, _ = search(index, query, k=2)
    expected = {"query": query, "top_k": [
        {"type": "web", "title": f"{h['path']}:{h['line_begin']}" + (f"-{h['line_end']}" if h["line_end"] != h["line_begin"] else ""),
         "url": f"file://{h['path']}#L{h['line_begin']}" + (f"-L{h['line_end']}" if h["line_end"] != h["line_begin"] else ""),
         "description": h["text"]} for h in hits]}
    ipython = [m for m in msgs if m["role"] == "ipython"]
    check("brave_search: answered from the index as an ipython turn holding JSON",
          rc == 0 and len(ipython) == 1 and ipython[0]["content"] == expected, f"{ipython} vs {expected} {err}")
    p = subprocess.run([HERD, "prompt", "-m", model, "--conversation", saved], capture_output=True)
    prompt = p.stdout.decode()
    # The template writes a JSON result with tojson: Python's json.dumps, non-ASCII kept.
    check("brave_search: the rendered prompt holds the call and the result byte for byte",
          p.returncode == 0 and "Tools: brave_search" in prompt
          and f'<|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>brave_search.call(query="{query}")<|eom_id|>'
          f"<|start_header_id|>ipython<|end_header_id|>\n\n{json.dumps(expected, ensure_ascii=False)}<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n" in prompt, prompt[-600:])
    check("brave_search: the reply goes on after the result", len(msgs) >= 4 and msgs[-1]["role"] == "assistant", msgs)

    saved = os.path.join(tmp, "wolfram.json")
    rc, out, err = chat(model, ["compute", "/save " + saved], "--builtin-tools", "wolfram_alpha",
                        "--prefill", '<|python_tag|>wolfram_alpha.call(query="2+2")<|eom_id|>')
    ipython = [m for m in saved_messages(saved) if m["role"] == "ipython"]
    check("wolfram_alpha: 'not configured' without --tool-exec", rc == 0 and len(ipython) == 1
          and "not configured" in ipython[0]["content"] and "not configured" in err, f"{ipython} {err}")

    def run_code(code, *flags, timeout=60):
        saved = os.path.join(tmp, "code.json")
        if os.path.exists(saved):
            os.remove(saved)
        start = time.time()
        rc, out, err = chat(model, ["run it", "PASTED", "/save " + saved], "--prefill",
                            "<|python_tag|>" + code + "<|eom_id|>", *flags, timeout=timeout)
        ipython = [m["content"] for m in saved_messages(saved) if m["role"] == "ipython"]
        return rc, (ipython[0] if ipython else None), err, time.time() - start

    marker = os.path.join(tmp, "ran.txt")
    rc, result, err, _ = run_code(f"open({marker!r}, 'w').write('x')")
    check("code_interpreter: nothing runs without --builtin-tools code_interpreter",
          rc == 0 and result == "PASTED" and not os.path.exists(marker), f"{result} {err}")

    sandboxed = ["--builtin-tools", "code_interpreter", "--tool-timeout", "3"]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    outside = os.path.join(tmp, "outside.txt")
    code = ("import os, socket\n"
            "open('inside.txt', 'w').write('ok'); print('inside ok')\n"
            "try:\n"
            f"    open({outside!r}, 'w').write('x'); print('outside WRITTEN')\n"
            "except OSError as e: print('outside refused', e.errno)\n"
            "s = socket.socket(); s.settimeout(2)\n"
            "try:\n"
            f"    s.connect(('127.0.0.1', {port})); print('network CONNECTED')\n"
            "except OSError as e: print('network refused', e.errno)\n"
            "print('env', sorted(k for k in os.environ if k not in ('PWD', 'SHLVL', '_')))\n")
    rc, result, err, _ = run_code(code, *sandboxed)
    listener.close()
    check("code_interpreter: runs and writes in its own directory", rc == 0 and result and "inside ok" in result,
          f"{result} {err}")
    check("code_interpreter: no network (a local listener is unreachable)", result and "network refused" in result,
          result)
    check("code_interpreter: environment scrubbed", result and
          "env ['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'TMPDIR']" in result, result)
    landlock = "writes only in its directory" in err
    check("code_interpreter: writes outside its directory fail" + ("" if landlock else " (no Landlock: skipped)"),
          not landlock or ("outside refused" in result and not os.path.exists(outside)), result)

    rc, result, err, took = run_code("while True:\n    pass\n", *sandboxed)
    check("code_interpreter: an infinite loop is killed at the wall limit",
          rc == 0 and result and "timed out after 3 s" in result and took < 30, f"{result} {took}")
    rc, result, err, _ = run_code("x = bytearray(8 << 30)\nprint('ALLOCATED')\n", *sandboxed)
    check("code_interpreter: a memory hog fails", rc == 0 and result and "MemoryError" in result
          and "ALLOCATED" not in result, result)
    bomb = ("import os, time\nn = 0\ntry:\n    for _ in range(500):\n        if os.fork() == 0:\n"
            "            time.sleep(60)\n            os._exit(0)\n        n += 1\n"
            "except OSError as e:\n    print('fork refused after', n)\n")
    rc, result, err, took = run_code(bomb, *sandboxed)
    n = int(result.split("fork refused after ")[1].split()[0]) if result and "fork refused after" in result else -1
    check("code_interpreter: a fork bomb is capped", rc == 0 and 0 <= n < 40 and took < 30, f"{result} {took}")
    rc, result, err, _ = run_code("print('x' * 200000)\n", *sandboxed, "--tool-output-cap", "1KiB")
    check("code_interpreter: output capped", rc == 0 and result and "wrote more than 1024 bytes" in result
          and len(result) < 2000, result and result[-200:])
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
