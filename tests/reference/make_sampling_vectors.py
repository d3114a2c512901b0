#!/usr/bin/env python3
"""Reference vectors for herd's sampler chain and logprobs, made with torch and the logits
processors of Hugging Face transformers.

Run offline (pip install torch transformers); CI only reads the committed output,
tests/data/sampling/vectors.json. For each case it stores the raw logits, the prompt and generated
ids, the parameters, the final distribution (probs: softmax after the whole chain, 0 where a token
was dropped) and torch.log_softmax of the raw logits.

The chain is herd's order, with the processors composed by hand as
  RepetitionPenaltyLogitsProcessor -> frequency/presence (no HF processor: the OpenAI formula,
  written out below) -> TemperatureLogitsWarper -> TopKLogitsWarper -> TopPLogitsWarper
  -> MinPLogitsWarper -> softmax.
(HF's generate() builds its own order from generation_config; in transformers 5.24 these stages
run in the same order, but composing them here keeps the vectors independent of that choice.)

Cases avoid the boundaries where float rounding could flip a decision (a tie at the k-th logit,
a cumulative probability within 2e-5 of top_p, a probability within a relative 2e-5 of the min-p
threshold): the script checks, and refuses to write such a case.
"""
import json
import os

import torch
from transformers.generation.logits_process import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper,
                                                    TopPLogitsWarper)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sampling", "vectors.json")
MARGIN = 2e-5


def penalise_frequency_presence(scores, generated, frequency, presence):
    """OpenAI: logit -= count * frequency + (count > 0) * presence, over the generated ids."""
    counts = torch.zeros(scores.shape[-1], dtype=torch.float64)
    for t in generated:
        counts[t] += 1
    return scores - (counts * frequency + (counts > 0).double() * presence).to(scores.dtype)


def check_margins(scores, p):
    """Refuses a case whose top-k, top-p or min-p decision sits on a rounding boundary."""
    s = scores[0].double()
    if p["top_k"] > 0 and p["top_k"] < s.numel():
        v = torch.sort(s, descending=True).values
        assert v[p["top_k"] - 1] - v[p["top_k"]] > MARGIN, "tie at the top-k boundary"
        s = torch.where(s >= v[p["top_k"] - 1], s, torch.tensor(float("-inf"), dtype=s.dtype))
    probs = torch.softmax(s, -1)
    if p["top_p"] < 1.0:
        cum = torch.cumsum(torch.sort(probs, descending=True).values, 0)
        cut = int((cum < p["top_p"]).sum())  # the last token kept
        near = cum[max(cut - 1, 0):cut + 1]
        assert (near - p["top_p"]).abs().min() > MARGIN, "cumulative probability on top_p"
    return probs


def chain(logits, prompt, generated, p):
    scores = torch.tensor([logits], dtype=torch.float32)
    ids = torch.tensor([prompt + generated], dtype=torch.long)
    if p["repetition_penalty"] != 1.0 and ids.numel() > 0:
        scores = RepetitionPenaltyLogitsProcessor(p["repetition_penalty"])(ids, scores)
    scores = penalise_frequency_presence(scores, generated, p["frequency_penalty"], p["presence_penalty"])
    scores = TemperatureLogitsWarper(p["temperature"])(ids, scores)
    check_margins(scores, p)
    if p["top_k"] > 0:
        scores = TopKLogitsWarper(p["top_k"])(ids, scores)
    if p["top_p"] < 1.0:
        scores = TopPLogitsWarper(p["top_p"])(ids, scores)
    if p["min_p"] > 0.0:
        probs = torch.softmax(scores.double(), -1)[0]
        threshold = p["min_p"] * probs.max()
        kept = probs[probs > 0]
        assert (kept / threshold - 1).abs().min() > MARGIN, "probability on the min-p threshold"
        scores = MinPLogitsWarper(p["min_p"])(ids, scores)
    return torch.softmax(scores.double(), -1)[0]


def short(values):
    """10 significant digits: far below the tests' 1e-5 tolerance, and a smaller file."""
    return [float(f"{v:.10g}") for v in values.tolist()]


def params(**over):
    p = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
             frequency_penalty=0.0, presence_penalty=0.0)
    p.update(over)
    return p


def main():
    g = torch.Generator().manual_seed(20240723)
    # Small rows with positive, negative and zero logits, so the repetition penalty's two branches act.
    small = [1.5, -0.5, 3.0, 0.25, -2.0, 2.2, 0.0, -1.25, 1.0, 0.6]
    mixed = (torch.randn(32, generator=g) * 2.0).tolist()
    # Wide and flat: the nucleus holds hundreds of tokens, past the sampler's first block (256).
    wide = (torch.randn(1024, generator=g) * 0.5).tolist()
    # float32-representable, so C++ reads exactly the values torch used.
    small, mixed, wide = (torch.tensor(r, dtype=torch.float32).tolist() for r in (small, mixed, wide))

    cases = [
        ("temperature", small, [], [], params(temperature=0.7)),
        ("temperature-hot", small, [], [], params(temperature=1.8)),
        ("repetition", small, [0, 1, 6], [4, 1], params(repetition_penalty=1.3)),
        ("frequency-presence", small, [2], [2, 2, 5, 1],
         params(frequency_penalty=0.4, presence_penalty=0.3)),
        ("top-k", small, [], [], params(top_k=3)),
        ("top-p", small, [], [], params(top_p=0.8, temperature=0.9)),
        ("min-p", small, [], [], params(min_p=0.12, temperature=1.5)),
        ("top-k-then-top-p", mixed, [], [], params(top_k=10, top_p=0.7)),
        ("top-p-then-min-p", mixed, [], [], params(top_p=0.95, min_p=0.05, temperature=1.3)),
        ("all", mixed, [3, 7, 7, 11, 20], [11, 3, 3, 30],
         params(temperature=0.8, top_k=12, top_p=0.9, min_p=0.05, repetition_penalty=1.2,
                frequency_penalty=0.5, presence_penalty=0.3)),
        ("wide-top-p", wide, [], [], params(top_p=0.9)),
        ("wide-all", wide, list(range(0, 1024, 7)), list(range(5, 400, 13)),
         params(temperature=1.2, top_p=0.85, min_p=0.3, repetition_penalty=1.1,
                frequency_penalty=0.2, presence_penalty=0.1)),
    ]
    out = []
    for name, logits, prompt, generated, p in cases:
        probs = chain(logits, prompt, generated, p)
        log_softmax = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1)
        out.append({"name": name, "logits": logits, "prompt": prompt, "generated": generated, "params": p,
                    "probs": short(probs), "log_softmax": short(log_softmax),
                    "n_kept": int((probs > 0).sum())})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tests/reference/make_sampling_vectors.py", "cases": out}, f)
        f.write("\n")
    for c in out:
        print(f"{c['name']}: {len(c['logits'])} logits, {c['n_kept']} kept")


if __name__ == "__main__":
    main()
