#!/usr/bin/env python3
"""`herd serve` against malformed requests: each gets its status and OpenAI's error shape
{"error": {"message", "type", "param", "code"}} naming the field, and the server stays healthy.

Usage: test_bad_input.py HERD_BINARY TESTS_DATA_DIR. Standard library only.
"""
import json
import os
import sys
import tempfile
import urllib.request

import serve_fixture as F

HERD, DATA = sys.argv[1], sys.argv[2]
check = F.check
CHAT, COMP = "/v1/chat/completions", "/v1/completions"
M = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
BAD = "invalid_request_error"


def chat(**kw):
    return {"messages": M, "max_tokens": 2, **kw}


def call_turn(arguments):
    return {"messages": [M[0], {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_time", "arguments": arguments}}]}, M[0]]}


# (name, method, path, body, expected status, expected error type, expected param or None)
CASES = [
    ("malformed JSON", "POST", CHAT, '{"messages": [', 400, BAD, None),
    ("empty body", "POST", CHAT, "", 400, BAD, None),
    ("body is an array", "POST", CHAT, "[1, 2]", 400, BAD, None),
    ("body is a string", "POST", CHAT, '"hello"', 400, BAD, None),
    ("JSON nested 10000 deep", "POST", CHAT, '{"a":' + "[" * 10000 + "]" * 10000 + "}", 400, BAD, None),
    ("invalid UTF-8 in content", "POST", CHAT, b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, BAD, None),
    ("no messages", "POST", CHAT, {"max_tokens": 2}, 400, BAD, "messages"),
    ("messages not an array", "POST", CHAT, {"messages": "hi"}, 400, BAD, "messages"),
    ("messages empty", "POST", CHAT, {"messages": []}, 400, BAD, "messages"),
    ("too many messages", "POST", CHAT, {"messages": M * 5000}, 400, BAD, "messages"),
    ("message not an object", "POST", CHAT, {"messages": [1]}, 400, BAD, "messages[0]"),
    ("role missing", "POST", CHAT, {"messages": [{"content": "x"}]}, 400, BAD, "messages[0].role"),
    ("unknown role", "POST", CHAT, {"messages": [{"role": "wizard", "content": "x"}]}, 400, BAD, "messages[0].role"),
    ("role not a string", "POST", CHAT, {"messages": [{"role": 5, "content": "x"}]}, 400, BAD, "messages[0].role"),
    ("content a number", "POST", CHAT, {"messages": [{"role": "user", "content": 5}]}, 400, BAD, "messages[0].content"),
    ("content an image part", "POST", CHAT, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}, 400, BAD, "messages[0].content[0].type"),
    ("temperature a string", "POST", CHAT, chat(temperature="hot"), 400, BAD, "temperature"),
    ("temperature 3", "POST", CHAT, chat(temperature=3), 400, BAD, "temperature"),
    ("top_p 0", "POST", CHAT, chat(top_p=0), 400, BAD, "top_p"),
    ("top_p 1.5", "POST", CHAT, chat(top_p=1.5), 400, BAD, "top_p"),
    ("presence_penalty 3", "POST", CHAT, chat(presence_penalty=3), 400, BAD, "presence_penalty"),
    ("n 0", "POST", CHAT, chat(n=0), 400, BAD, "n"),
    ("n above --max-n", "POST", CHAT, chat(n=17), 400, BAD, "n"),
    ("n 2.5", "POST", CHAT, chat(n=2.5), 400, BAD, "n"),
    ("max_tokens -1", "POST", CHAT, chat(max_tokens=-1), 400, BAD, "max_tokens"),
    ("max_tokens 0", "POST", CHAT, chat(max_tokens=0), 400, BAD, "max_tokens"),
    ("max_tokens a string", "POST", CHAT, chat(max_tokens="10"), 400, BAD, "max_tokens"),
    ("max_tokens 1e300", "POST", CHAT, chat(max_tokens=1e300), 400, BAD, "max_tokens"),
    ("seed a string", "POST", CHAT, chat(seed="x"), 400, BAD, "seed"),
    ("stream a string", "POST", CHAT, chat(stream="yes"), 400, BAD, "stream"),
    ("stream_options without stream", "POST", CHAT, chat(stream_options={"include_usage": True}), 400, BAD,
     "stream_options"),
    ("stop a number", "POST", CHAT, chat(stop=5), 400, BAD, "stop"),
    ("stop empty string", "POST", CHAT, chat(stop=[""]), 400, BAD, "stop"),
    ("17 stop strings", "POST", CHAT, chat(stop=[str(i) for i in range(17)]), 400, BAD, "stop"),
    ("logprobs a string", "POST", CHAT, chat(logprobs="yes"), 400, BAD, "logprobs"),
    ("top_logprobs 21", "POST", CHAT, chat(logprobs=True, top_logprobs=21), 400, BAD, "top_logprobs"),
    ("top_logprobs without logprobs", "POST", CHAT, chat(top_logprobs=2), 400, BAD, "top_logprobs"),
    ("tools not an array", "POST", CHAT, chat(tools={}), 400, BAD, "tools"),
    ("tool not an object", "POST", CHAT, chat(tools=[1]), 400, BAD, "tools[0]"),
    ("tool type retrieval", "POST", CHAT, chat(tools=[{"type": "retrieval"}]), 400, BAD, "tools[0].type"),
    ("tool without function", "POST", CHAT, chat(tools=[{"type": "function"}]), 400, BAD, "tools[0].function"),
    ("tool name with a space", "POST", CHAT, chat(tools=[{"type": "function", "function": {"name": "get time"}}]), 400,
     BAD, "tools[0].function.name"),
    ("tool parameters a string", "POST", CHAT, chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": "{}"}}]), 400, BAD, "tools[0].function.parameters"),
    ("tool parameters with 2000 keys", "POST", CHAT, chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {f"k{i}": {} for i in range(2000)}}}}]), 400, BAD,
     "tools[0]"),
    ("tool_choice naming an unknown tool", "POST", CHAT, chat(tools=[TOOL], tool_choice={
        "type": "function", "function": {"name": "launch"}}), 400, BAD, "tool_choice.function.name"),
    ("tool_choice sometimes", "POST", CHAT, chat(tools=[TOOL], tool_choice="sometimes"), 400, BAD, "tool_choice"),
    ("tool_choice required without tools", "POST", CHAT, chat(tool_choice="required"), 400, BAD, "tool_choice"),
    ("builtin_tools unknown", "POST", CHAT, chat(builtin_tools=["rm_rf"]), 400, BAD, "builtin_tools"),
    ("tool_calls on a user message", "POST", CHAT, {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
     400, BAD, "messages[0].tool_calls"),
    ("tool call arguments not JSON", "POST", CHAT, call_turn("{tz: UTC"), 400, BAD,
     "messages[1].tool_calls[0].function.arguments"),
    # Once a crash: nesting inside a string escapes the body's own nesting bound.
    ("tool call arguments nested 500000 deep", "POST", CHAT, call_turn('{"a":' + "[" * 500000 + "]" * 500000 + "}"), 400,
     BAD, "messages[1].tool_calls[0].function.arguments"),
    ("tool call arguments with 2000 keys", "POST", CHAT, call_turn(json.dumps({f"k{i}": 1 for i in range(2000)})), 400,
     BAD, "messages[1].tool_calls[0].function.arguments"),
    ("continue_final_message a string", "POST", CHAT, chat(continue_final_message="yes"), 400, BAD,
     "continue_final_message"),
    ("chat prompt longer than the context", "POST", CHAT, {"messages": [{"role": "user", "content": "word " * 400}]}, 400,
     BAD, "messages"),
    ("completion without prompt", "POST", COMP, {"max_tokens": 2}, 400, BAD, "prompt"),
    ("completion prompt a number", "POST", COMP, {"prompt": 5}, 400, BAD, "prompt"),
    ("completion prompt empty ids", "POST", COMP, {"prompt": []}, 400, BAD, "prompt"),
    ("completion token id past the vocabulary", "POST", COMP, {"prompt": [1, 999999]}, 400, BAD, "prompt[1]"),
    ("completion token id negative", "POST", COMP, {"prompt": [-1]}, 400, BAD, "prompt[0]"),
    ("completion two prompts", "POST", COMP, {"prompt": ["a", "b"]}, 400, BAD, "prompt"),
    ("completion logprobs 21", "POST", COMP, {"prompt": "a", "logprobs": 21}, 400, BAD, "logprobs"),
    ("completion suffix", "POST", COMP, {"prompt": "a", "suffix": "b"}, 400, BAD, "suffix"),
    ("completion best_of 2", "POST", COMP, {"prompt": "a", "best_of": 2}, 400, BAD, "best_of"),
    ("completion echo+logprobs with n 2", "POST", COMP, {"prompt": "a b", "echo": True, "logprobs": 1, "n": 2}, 400, BAD,
     "echo"),
    ("completion prompt longer than the context", "POST", COMP, {"prompt": list(range(1, 300))}, 400, BAD, "prompt"),
    ("tokenize prompt a number", "POST", "/tokenize", {"prompt": 5}, 400, BAD, "prompt"),
    ("tokenize bad messages", "POST", "/tokenize", {"messages": [{"role": "wizard"}]}, 400, BAD, "messages[0].role"),
    ("detokenize tokens a string", "POST", "/detokenize", {"tokens": "x"}, 400, BAD, "tokens"),
    ("detokenize id past the vocabulary", "POST", "/detokenize", {"tokens": [128256]}, 400, BAD, "tokens[0]"),
    ("body over --max-body", "POST", CHAT, {"messages": [{"role": "user", "content": "x" * 2200000}]}, 413, BAD, None),
    ("GET on a POST endpoint", "GET", CHAT, None, 405, BAD, None),
    ("PUT on a GET endpoint", "PUT", "/v1/models", "", 405, BAD, None),
    ("DELETE on /health", "DELETE", "/health", None, 405, BAD, None),
    ("unknown path", "GET", "/v2/anything", None, 404, "not_found_error", None),
    ("unknown POST path", "POST", "/v1/embeddings", {"input": "x"}, 404, "not_found_error", None),
]


def send(server, method, path, body, headers=None):
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return server.request(method, path, body, headers=headers)


tmp = tempfile.mkdtemp(prefix="herd-serve-bad-")
model = F.make_model(HERD, DATA, tmp, context=256)
with F.Server(HERD, model, "-t", "1", "--max-body", "2MiB") as server:
    for name, method, path, body, status, etype, param in CASES:
        st, got = send(server, method, path, body)
        ok = st == status and F.error_shape_ok(got) and got["error"]["type"] == etype
        if ok and param is not None:
            ok = got["error"]["param"] == param
        check(f"{name}: {status}", ok, (st, got))
        if server.proc.poll() is not None:
            check("the server is still running", False, "\n".join(server.lines[-5:]))
            break

    st, got = send(server, "POST", CHAT, {"messages": [{"role": "user", "content": "word " * 400}]})
    check("a long prompt's error gives the numbers", st == 400 and "the context holds 256" in got["error"]["message"]
          and "the prompt has " in got["error"]["message"], got)
    st, got = send(server, "GET", CHAT, None)
    check("405 names the method to use", "POST" in got["error"]["message"] and got["error"]["code"] == "method_not_allowed",
          got)
    # curl -d sends a form type, which cpp-httplib reads only up to 8 KiB: the error says what to send.
    st, got = server.request("POST", CHAT, json.dumps(chat(stop=["x" * 9000])),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    check("a form-typed body over 8 KiB: 413 that says to send application/json",
          st == 413 and "Content-Type: application/json" in got["error"]["message"], (st, got))
    st, got = server.request("POST", CHAT, json.dumps(chat()), headers={"Content-Type": "application/x-www-form-urlencoded"})
    check("a small form-typed JSON body is served", st == 200, (st, got))
    st, got = send(server, "POST", CHAT, chat(temperature=None, seed=None))
    check("null reads as absent", st == 200 and got["choices"][0]["finish_reason"] in ("stop", "length"), got)

    # Still healthy: the process runs, /health answers, a request is served, no block is held.
    st, health = send(server, "GET", "/health", None)
    st2, ok = send(server, "POST", CHAT, chat())
    check("healthy after the table", server.proc.poll() is None and st == 200 and health == {"status": "ok"}
          and st2 == 200 and ok["usage"]["completion_tokens"] >= 1, (st, health, st2, ok))
    check("no KV block held after the table", server.wait_blocks_free(), server.metric("herd_kv_blocks_used"))
    _, metrics = send(server, "GET", "/metrics", None)
    check("/metrics counts the 400s", 'herd_requests_total{endpoint="/v1/chat/completions",status="400"}' in metrics,
          metrics[:500])
print(f"{len(CASES)} malformed requests")
F.report()
