#!/usr/bin/env python3
"""`herd serve` under load and at its edges: 64 concurrent streaming clients, clients that hang up
mid-stream, a full queue (429), SIGTERM's drain, the API key, JSON request logs. KV blocks are
read from /metrics before and after: none may stay held.

Usage: test_load.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
"""
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time

import serve_fixture as F

HERD, DATA = sys.argv[1], sys.argv[2]
check = F.check
MSGS = [{"role": "user", "content": "Tell me a story."}]


def open_stream(port, body, headers=None):
    """An open streaming request: (connection, response) once the status line is read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps({**body, "stream": True}),
                 {"Content-Type": "application/json", **(headers or {})})
    return conn, conn.getresponse()


def read_events(resp, limit=None):
    """The JSON events of a server-sent event stream, up to [DONE] (then True) or `limit` events."""
    events = []
    while limit is None or len(events) < limit:
        line = resp.readline()
        if not line:
            return events, False
        line = line.decode().strip()
        if line == "data: [DONE]":
            return events, True
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    return events, False


def stream_once(port, max_tokens):
    conn, resp = open_stream(port, {"messages": MSGS, "max_tokens": max_tokens, "temperature": 1.0,
                                    "stream_options": {"include_usage": True}})
    try:
        if resp.status != 200:
            return {"status": resp.status}
        events, done = read_events(resp)
        chunks = [e for e in events if e["choices"] and e["choices"][0]["delta"].get("content")]
        finish = [e["choices"][0]["finish_reason"] for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
        usage = [e["usage"] for e in events if e.get("usage")]
        return {"status": 200, "done": done, "finish": finish, "usage": usage[0] if usage else None,
                "chunks": len(chunks)}
    finally:
        conn.close()


def load(server):
    clients, per_client, max_tokens = 64, 2, 24
    before = server.metric("herd_generation_tokens_total"), server.metric("herd_prompt_tokens_total")
    results, lock = [], threading.Lock()

    def client():
        for _ in range(per_client):
            try:
                r = stream_once(server.port, max_tokens)
            except Exception as e:  # noqa: BLE001 (a failed client is a failed check below)
                r = {"status": repr(e)}
            with lock:
                results.append(r)

    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - start
    good = [r for r in results if r.get("status") == 200 and r["done"] and r["usage"] and len(r["finish"]) == 1]
    check(f"{clients} concurrent streaming clients x {per_client}: all complete ({took:.1f}s)",
          len(good) == clients * per_client, [r for r in results if r not in good][:5])
    # At temperature 1 a stream may end at once with the end-of-turn token: no content, finish "stop".
    # Each token makes at most one content chunk, plus one at the end for the bytes of an incomplete
    # UTF-8 character the detokenizer held back (sampled text may stop mid-character).
    bad_usage = [r for r in good if not (
        r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
        and (1 if r["finish"] == ["length"] else 0) <= r["usage"]["completion_tokens"] <= max_tokens
        and r["chunks"] <= r["usage"]["completion_tokens"] + 1)]
    check("each stream's usage adds up and bounds its chunks", not bad_usage, bad_usage[:3])
    gen = server.metric("herd_generation_tokens_total") - before[0]
    prompt = server.metric("herd_prompt_tokens_total") - before[1]
    check("/metrics counts the tokens the clients were told", gen == sum(r["usage"]["completion_tokens"] for r in good)
          and prompt == sum(r["usage"]["prompt_tokens"] for r in good), (gen, prompt))
    check("no KV block held after the load", server.wait_blocks_free(), server.metric("herd_kv_blocks_used"))


def disconnects(server):
    conns = []
    for _ in range(16):
        conn, resp = open_stream(server.port, {"messages": MSGS, "max_tokens": 3000, "temperature": 1.0})
        read_events(resp, limit=2)
        conns.append(conn)
    held = server.metric("herd_kv_blocks_used")
    for conn in conns:
        conn.sock.close()  # hang up mid-stream, without reading the rest
        conn.close()
    check("16 clients that hang up mid-stream: their blocks come back",
          held > 0 and server.wait_blocks_free(timeout=10), (held, server.metric("herd_kv_blocks_used")))
    check("... and nothing is left running", server.metric("herd_requests_running") == 0
          and server.metric("herd_requests_waiting") == 0, server.metric("herd_requests_running"))


def full_queue(model):
    with F.Server(HERD, model, "-t", "1", "--parallel", "1", "--max-queue", "1") as server:
        body = {"messages": MSGS, "max_tokens": 3000, "temperature": 1.0}
        running, r1 = open_stream(server.port, body)
        read_events(r1, limit=2)  # it runs
        queued, r2 = open_stream(server.port, body)
        statuses = [server.request("POST", "/v1/chat/completions", {**body, "max_tokens": 4}) for _ in range(3)]
        check("a full queue: 429 with a JSON error", r2.status == 200 and all(
            st == 429 and F.error_shape_ok(b) and b["error"]["type"] == "rate_limit_error" for st, b in statuses),
            (r2.status, statuses))
        for conn in (running, queued):
            conn.sock.close()
            conn.close()
        check("the running and the queued request's blocks come back", server.wait_blocks_free(), "")
        st, b = server.request("POST", "/v1/chat/completions", {**body, "max_tokens": 2})
        check("once the queue empties, requests are served again", st == 200, (st, b))


def drain(model):
    server = F.Server(HERD, model, "-t", "1")
    conn, resp = open_stream(server.port, {"messages": MSGS, "max_tokens": 2000, "temperature": 1.0,
                                           "stream_options": {"include_usage": True}})
    first, _ = read_events(resp, limit=2)
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("stopping" in line for line in server.lines):
        time.sleep(0.01)
    st, body = server.request("POST", "/v1/chat/completions", {"messages": MSGS, "max_tokens": 2})
    st_health, health = server.request("GET", "/health")
    rest, done = read_events(resp)
    conn.close()
    rc = server.stop(timeout=30)
    usage = [e["usage"] for e in rest if e.get("usage")]
    check("SIGTERM: new requests get 503 with a JSON error", st == 503 and F.error_shape_ok(body), (st, body))
    check("SIGTERM: /health says draining", st_health == 503 and health == {"status": "draining"}, (st_health, health))
    check("SIGTERM: the stream in flight completes", done and usage and usage[0]["completion_tokens"] >= 1
          and len(first) == 2, (done, usage))
    check("SIGTERM: exit code 0", rc == 0, (rc, server.lines[-3:]))


def api_key_and_json_log(model):
    env = {**os.environ, "HERD_API_KEY": "s3cret"}
    with F.Server(HERD, model, "-t", "1", "--log-format", "json", env=env) as server:
        body = {"messages": MSGS, "max_tokens": 2}
        st1, e1 = server.request("POST", "/v1/chat/completions", body)
        st2, e2 = server.request("POST", "/v1/chat/completions", body, headers={"Authorization": "Bearer wrong"})
        st3, ok = server.request("POST", "/v1/chat/completions", body, headers={"Authorization": "Bearer s3cret"})
        st4, _ = server.request("GET", "/v1/models")
        st5, _ = server.request("GET", "/health")
        check("API key: 401 without it, with a JSON error", st1 == 401 and F.error_shape_ok(e1)
              and e1["error"]["type"] == "authentication_error", (st1, e1))
        check("API key: 401 with a wrong one", st2 == 401 and F.error_shape_ok(e2), (st2, e2))
        check("API key: served with the right one", st3 == 200 and ok["usage"]["completion_tokens"] >= 1, (st3, ok))
        check("API key: every endpoint but /health needs it", st4 == 401 and st5 == 200, (st4, st5))
        check("the start line says a key is required", "an API key is required" in server.lines[0], server.lines[0])
        time.sleep(0.2)
    logs = [line for line in server.lines[1:] if line.startswith("{")]
    parsed = []
    for line in logs:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append(None)
    check("--log-format json: one JSON object per request", len(parsed) == 5 and all(
        p and {"remote", "method", "path", "status", "latency_s"} <= set(p) for p in parsed), server.lines)
    check("--log-format json: generation lines carry token counts", parsed and any(
        p and p.get("status") == 200 and p.get("completion_tokens", 0) >= 1 for p in parsed), parsed)


tmp = tempfile.mkdtemp(prefix="herd-serve-load-")
model = F.make_model(HERD, DATA, tmp)
with F.Server(HERD, model, "-t", "2", "--parallel", "64") as server:
    check("no KV block held at the start", server.metric("herd_kv_blocks_used") == 0, "")
    load(server)
    disconnects(server)
full_queue(model)
drain(model)
api_key_and_json_log(model)
F.report()
