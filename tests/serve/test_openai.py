#!/usr/bin/env python3
"""`herd serve` through the official `openai` Python client (docs/serve.md).

Usage: test_openai.py HERD_BINARY TESTS_DATA_DIR [synthetic|smollm2]. synthetic (the default): a
random model with Llama 3's full vocabulary, and for tool calling a model that always predicts
<|eom_id|>; smollm2: the real model at $HERD_SMOLLM2 (ChatML), skipped without it. Exits 77 when
the client cannot be installed.
"""
import json
import os
import subprocess
import sys
import tempfile

import serve_fixture as F

F.use_venv()
import openai  # noqa: E402

HERD, DATA = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "synthetic"
check = F.check


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def stream_chat(c, **kw):
    """(role, content, finish_reasons by index, tool_call deltas, usage) of a streamed chat."""
    role, content, finish, calls, usage = None, {}, {}, [], None
    for chunk in c.chat.completions.create(stream=True, **kw):
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.role:
                role = ch.delta.role
            content[ch.index] = content.get(ch.index, "") + (ch.delta.content or "")
            if ch.delta.tool_calls:
                calls += ch.delta.tool_calls
            if ch.finish_reason:
                finish[ch.index] = ch.finish_reason
    return role, content, finish, calls, usage


def usage_adds_up(u):
    return u.prompt_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens


def client_tests(server, name):
    """What any model served must do: the same checks on the synthetic and the real model."""
    c = client(server)
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]

    models = c.models.list().data
    check("models lists the served model", [m.id for m in models] == [name], models)

    r = c.chat.completions.create(model=name, messages=msgs, max_tokens=8, temperature=0)
    text = r.choices[0].message.content
    check("chat: a reply, usage adds up", r.object == "chat.completion" and isinstance(text, str)
          and r.choices[0].finish_reason in ("stop", "length") and usage_adds_up(r.usage)
          and 1 <= r.usage.completion_tokens <= 8 and r.model == name, r)

    role, content, finish, _, usage = stream_chat(c, model=name, messages=msgs, max_tokens=8, temperature=0,
                                                  stream_options={"include_usage": True})
    check("streamed chat equals the plain reply (greedy)", role == "assistant" and content.get(0) == text
          and finish.get(0) == r.choices[0].finish_reason, (content, text, finish))
    check("streamed usage equals the plain usage", usage is not None and usage.completion_tokens ==
          r.usage.completion_tokens and usage.prompt_tokens == r.usage.prompt_tokens, usage)

    sampled = [c.chat.completions.create(model=name, messages=msgs, n=3, seed=7, temperature=1.0, max_tokens=8)
               for _ in range(2)]
    texts = [[ch.message.content for ch in sorted(s.choices, key=lambda ch: ch.index)] for s in sampled]
    check("n=3 with a seed: three choices, the same on a second call", len(texts[0]) == 3 and texts[0] == texts[1]
          and [ch.index for ch in sorted(sampled[0].choices, key=lambda ch: ch.index)] == [0, 1, 2], texts)
    check("n=3: the choices differ (seed, seed+1, seed+2)", len(set(texts[0])) > 1, texts)
    check("n=3: usage counts all choices", usage_adds_up(sampled[0].usage)
          and 3 <= sampled[0].usage.completion_tokens <= 24, sampled[0].usage)
    _, content3, finish3, _, usage3 = stream_chat(c, model=name, messages=msgs, n=3, seed=7, temperature=1.0,
                                                  max_tokens=8, stream_options={"include_usage": True})
    check("n=3 streamed: the same three choices", [content3.get(i) for i in range(3)] == texts[0]
          and len(finish3) == 3 and usage3.completion_tokens == sampled[0].usage.completion_tokens,
          (content3, texts[0]))

    # A stop string taken from the greedy reply: the reply ends just before its first occurrence.
    long = c.chat.completions.create(model=name, messages=msgs, max_tokens=16, temperature=0)
    full = long.choices[0].message.content
    if len(full) >= 6:
        stop = full[len(full) // 2:len(full) // 2 + 2]
        r = c.chat.completions.create(model=name, messages=msgs, max_tokens=16, temperature=0, stop=[stop, "\u2603\u2603"])
        check("stop string: the reply ends before it", r.choices[0].message.content == full[:full.find(stop)]
              and r.choices[0].finish_reason == "stop", (stop, full, r.choices[0].message.content))
    else:
        check("stop string: a long enough greedy reply to cut", False, full)

    r = c.chat.completions.create(model=name, messages=msgs, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
    lp = r.choices[0].logprobs.content
    greedy_is_top = all(e.top_logprobs and e.top_logprobs[0].token == e.token
                        and abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4 for e in lp)
    check("logprobs: one entry per token, 3 alternatives, greedy = the best", len(lp) == r.usage.completion_tokens
          and all(len(e.top_logprobs) == 3 for e in lp) and greedy_is_top
          and all(e.logprob <= 0 and bytes(e.bytes).decode("utf-8", "replace") == e.token for e in lp)
          and all(e.top_logprobs[k].logprob >= e.top_logprobs[k + 1].logprob for e in lp for k in range(2)), lp)

    # /v1/completions: text and ids give the same reply; echo and logprobs cover the prompt.
    prompt = "The colour of the sky is"
    _, tok = server.request("POST", "/tokenize", {"prompt": prompt, "add_special_tokens": True})
    a = c.completions.create(model=name, prompt=prompt, max_tokens=6, temperature=0)
    b = c.completions.create(model=name, prompt=tok["tokens"], max_tokens=6, temperature=0)
    check("completions: text and token ids give the same reply", a.choices[0].text == b.choices[0].text
          and a.usage.prompt_tokens == len(tok["tokens"]) == b.usage.prompt_tokens and usage_adds_up(a.usage),
          (a, b, tok))
    e = c.completions.create(model=name, prompt=prompt, max_tokens=6, temperature=0, echo=True, logprobs=2)
    elp = e.choices[0].logprobs
    check("completions echo: the prompt, then the reply", e.choices[0].text == prompt + a.choices[0].text,
          e.choices[0].text)
    n_prompt = e.usage.prompt_tokens
    check("completions echo+logprobs: prompt and reply tokens", len(elp.tokens) == n_prompt + e.usage.completion_tokens
          and elp.token_logprobs[0] is None and all(x <= 0 for x in elp.token_logprobs[1:])
          and all(len(t) <= 2 for t in elp.top_logprobs[n_prompt:])
          and elp.text_offset == sorted(elp.text_offset), elp)
    streamed = "".join(ch.choices[0].text for ch in
                       c.completions.create(model=name, prompt=prompt, max_tokens=6, temperature=0, stream=True)
                       if ch.choices)
    check("completions streamed equals plain", streamed == a.choices[0].text, (streamed, a.choices[0].text))

    text = "Grüße, 世界! 😀 tabs\tand\nnewlines"
    st, t = server.request("POST", "/tokenize", {"prompt": text})
    st2, d = server.request("POST", "/detokenize", {"tokens": t["tokens"]})
    check("tokenize / detokenize round trip", st == st2 == 200 and d["prompt"] == text and t["count"] == len(t["tokens"]),
          (t, d))

    try:
        c.chat.completions.create(model=name, messages=[{"role": "wizard", "content": "x"}])
        check("the client raises BadRequestError for a bad role", False, "no error")
    except openai.BadRequestError as err:
        check("the client raises BadRequestError for a bad role", err.status_code == 400
              and F.error_shape_ok(err.response.json()) and err.response.json()["error"]["param"] == "messages[0].role",
              err.response.text)
    check("no KV block held after the tests", server.wait_blocks_free(), server.metric("herd_kv_blocks_used"))


def herd_prompt(tmp, conversation, ids=True):
    path = os.path.join(tmp, "conversation.json")
    with open(path, "w") as f:
        json.dump(conversation, f)
    p = subprocess.run([HERD, "prompt", "-m", MODEL, "--conversation", path, *(["--ids"] if ids else [])],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout) if ids else p.stdout


TOOLS = [{"type": "function", "function": {"name": "get_time", "description": "The time in a time zone",
                                            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                                                           "required": ["tz"]}}}]
CALLS = [  # (format, the assistant text the model "writes", the call it must become)
    ("custom JSON", '{"name": "get_time", "parameters": {"tz": "UTC"}}', ("get_time", {"tz": "UTC"})),
    ("<function=...>", '<function=get_time>{"tz": "Europe/Paris"}</function>', ("get_time", {"tz": "Europe/Paris"})),
    ("built-in brave_search", '<|python_tag|>brave_search.call(query="x")', ("brave_search", {"query": "x"})),
]


def tool_tests(tmp):
    """Tool calls end to end. The model always predicts <|eom_id|>, so with continue_final_message
    the completion is exactly the call the test wrote, ended as a call turn ends."""
    model = F.make_model(HERD, DATA, os.path.join(tmp, "eom"), forced=F.EOM)
    with F.Server(HERD, model, "-t", "1") as server:
        c = client(server)
        for fmt, text, (name, args) in CALLS:
            msgs = [{"role": "user", "content": "What time is it in UTC?"}, {"role": "assistant", "content": text}]
            kw = dict(model="model", messages=msgs, tools=TOOLS, max_tokens=4,
                      extra_body={"continue_final_message": True, "add_generation_prompt": False,
                                  "builtin_tools": ["brave_search"]})
            r = c.chat.completions.create(**kw)
            m = r.choices[0].message
            got = [(tc.function.name, json.loads(tc.function.arguments)) for tc in (m.tool_calls or [])]
            check(f"tool call ({fmt}): tool_calls with parsed arguments", got == [(name, args)]
                  and r.choices[0].finish_reason == "tool_calls" and not m.content
                  and m.tool_calls[0].id.startswith("call_") and m.tool_calls[0].type == "function", r)
            role, content, finish, deltas, _ = stream_chat(c, **kw)
            joined = "".join(content.values())
            check(f"tool call ({fmt}) streamed: the call as tool_calls, no call text as content",
                  finish == {0: "tool_calls"} and joined == "" and len(deltas) == 1 and deltas[0].function.name == name
                  and json.loads(deltas[0].function.arguments) == args and deltas[0].index == 0, (content, deltas))

        # The follow-up: the call and its result go back; the prompt is the one `herd prompt` renders.
        r = c.chat.completions.create(model="model", messages=[{"role": "user", "content": "Time in UTC?"},
                                                               {"role": "assistant", "content": CALLS[0][1]}],
                                      tools=TOOLS, extra_body={"continue_final_message": True})
        call = r.choices[0].message.tool_calls[0]
        follow = [{"role": "user", "content": "Time in UTC?"},
                  {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                  {"role": "tool", "tool_call_id": call.id, "content": '{"time": "12:00"}'}]
        r2 = c.chat.completions.create(model="model", messages=follow, tools=TOOLS, max_tokens=3)
        check("follow-up with the tool result is served", r2.choices[0].finish_reason == "stop"
              and usage_adds_up(r2.usage), r2)
        st, served = server.request("POST", "/tokenize", {"messages": follow, "tools": TOOLS})
        # The server parses the arguments string (OpenAI's shape) into the object the template writes.
        mine = {"messages": [follow[0], {"role": "assistant", "tool_calls": [{"name": "get_time", "arguments": {"tz": "UTC"}}]},
                             {"role": "tool", "content": '{"time": "12:00"}'}], "tools": TOOLS}
        want_ids = herd_prompt(tmp, mine)
        want_text = herd_prompt(tmp, mine, ids=False)
        st2, text = server.request("POST", "/detokenize", {"tokens": served["tokens"]})
        check("the tool result renders as an ipython turn, byte for byte as `herd prompt`", st == st2 == 200
              and served["tokens"] == want_ids and text["prompt"] == want_text
              # The template writes a string result with tojson (a string is iterable to Jinja): quoted.
              and '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"time\\": \\"12:00\\"}"<|eot_id|>' in want_text,
              (served, want_ids, text, want_text))
        check("the follow-up's prompt_tokens is that prompt's length", r2.usage.prompt_tokens == len(want_ids),
              (r2.usage, len(want_ids)))
        check("no KV block held after the tool tests", server.wait_blocks_free(), server.metric("herd_kv_blocks_used"))


def continuation(tmp):
    """continue_final_message: the prompt ends inside the final assistant turn, and the reply is
    only the new text. The model always predicts the token " ok" here."""
    base = F.make_model(HERD, DATA, os.path.join(tmp, "plain"))
    with F.Server(HERD, base, "-t", "1") as s:
        _, t = s.request("POST", "/tokenize", {"prompt": " ok"})
    assert len(t["tokens"]) == 1, t
    model = F.make_model(HERD, DATA, os.path.join(tmp, "ok"), forced=t["tokens"][0])
    with F.Server(HERD, model, "-t", "1") as server:
        c = client(server)
        msgs = [{"role": "user", "content": "Say ok."}, {"role": "assistant", "content": "Sure:"}]
        r = c.chat.completions.create(model="model", messages=msgs, max_tokens=3,
                                      extra_body={"continue_final_message": True})
        check("continue_final_message: the reply is only the new text", r.choices[0].message.content == " ok ok ok"
              and r.choices[0].finish_reason == "length", r)
        st, served = server.request("POST", "/tokenize", {"messages": msgs, "continue_final_message": True})
        want = herd_prompt(tmp, {"messages": msgs[:1]})
        _, prefill = server.request("POST", "/tokenize", {"prompt": "Sure:"})
        check("continue_final_message: the prompt is the conversation before it, then the message's text",
              served["tokens"] == want + prefill["tokens"], (served, want, prefill))
        st, served = server.request("POST", "/tokenize", {"messages": msgs[:1], "add_generation_prompt": False})
        check("add_generation_prompt: false renders no assistant header",
              served["tokens"] == herd_prompt(tmp, {"messages": msgs[:1], "add_generation_prompt": False}), served)
        r = c.chat.completions.create(model="model", messages=msgs[:1], max_tokens=5, stop=["ok ok"])
        check("stop string on a known reply", r.choices[0].message.content == " " and r.choices[0].finish_reason == "stop",
              r.choices[0].message.content)
        for body, param in [({"messages": msgs, "continue_final_message": True, "add_generation_prompt": True},
                             "add_generation_prompt"),
                            ({"messages": msgs[:1], "continue_final_message": True}, "messages[0]"),
                            ({"messages": msgs, "continue_final_message": True, "tools": TOOLS, "tool_choice": "required"},
                             "tool_choice")]:
            st, err = server.request("POST", "/v1/chat/completions", body)
            check(f"continue_final_message refused: {param}", st == 400 and F.error_shape_ok(err)
                  and err["error"]["param"] == param, (st, err))


tmp = tempfile.mkdtemp(prefix="herd-serve-openai-")
if MODE == "smollm2":
    MODEL = os.environ.get("HERD_SMOLLM2", "")
    if not os.path.exists(MODEL):
        F.skip("HERD_SMOLLM2 is not set to the small real model (scripts/fetch-model)")
    with F.Server(HERD, MODEL, "-t", "2", "--alias", "smollm2") as server:
        client_tests(server, "smollm2")
else:
    MODEL = F.make_model(HERD, DATA, os.path.join(tmp, "random"))
    with F.Server(HERD, MODEL, "-t", "1") as server:
        client_tests(server, "model")
    tool_tests(tmp)
    continuation(tmp)
F.report()
