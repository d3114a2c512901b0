#!/usr/bin/env python3
"""A load generator for OpenAI-compatible servers: streamed chat requests from C concurrent
clients (asyncio + the official openai client), greedy, a fixed max_tokens. Reports requests/s,
output tokens/s, time to first token and inter-token latency (p50/p90/p99).

Usage: loadgen.py --url http://127.0.0.1:8080/v1 [--concurrency 1,8,32] [--requests-per-client 4]
                  [--max-tokens 64]
Needs the openai package (tests/serve/venv.sh makes an environment with it).
"""
import argparse
import asyncio
import json
import time

import openai

PROMPTS = [  # varied, so that the prefix cache helps no server more than the system turn
    "Explain how a bicycle stays upright.", "Write a short poem about the sea.",
    "List three uses of baking soda.", "What causes the seasons on Earth?",
    "Describe a good breakfast.", "How do bees make honey?", "Why is the sky blue?",
    "Give advice to a new programmer.",
]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def one_request(client, model, prompt, max_tokens, stats):
    start = time.perf_counter()
    last, tokens = None, 0
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0,
        stream=True, stream_options={"include_usage": True})
    async for chunk in stream:
        now = time.perf_counter()
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
        if chunk.choices and chunk.choices[0].delta.content:
            if last is None:
                stats["ttft"].append(now - start)
            else:
                stats["itl"].append(now - last)
            last = now
    stats["tokens"] += tokens


async def run_level(url, model, concurrency, per_client, max_tokens):
    # Retries as the client's default: cpp-httplib servers (both here) close a kept-alive
    # connection after 5 requests, and a request sent on it as it closes is sent again.
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=2, timeout=600)
    stats = {"ttft": [], "itl": [], "tokens": 0}

    async def worker(w):
        for i in range(per_client):
            await one_request(client, model, PROMPTS[(w + i) % len(PROMPTS)], max_tokens, stats)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - start
    await client.close()
    n = concurrency * per_client
    return {"concurrency": concurrency, "requests": n, "wall_s": wall, "req_s": n / wall,
            "out_tok_s": stats["tokens"] / wall, "out_tokens": stats["tokens"],
            **{f"ttft_p{p}_ms": 1000 * percentile(stats["ttft"], p) for p in (50, 90, 99)},
            **{f"itl_p{p}_ms": 1000 * percentile(stats["itl"], p) for p in (50, 90, 99)}}


async def warm(url, model):
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
    await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
    await client.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="model")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()
    asyncio.run(warm(a.url, a.model))
    for c in (int(x) for x in a.concurrency.split(",")):
        print(json.dumps(asyncio.run(run_level(a.url, a.model, c, a.requests_per_client, a.max_tokens))), flush=True)


if __name__ == "__main__":
    main()
