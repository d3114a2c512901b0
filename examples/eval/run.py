#!/usr/bin/env python3
"""A batch evaluation to start from: runs `herd eval` on each task file, keeps per-item results and
summaries in one folder (a rerun resumes where it stopped), prints one table of every task's scores, and
plots them when matplotlib is installed.

  python3 examples/eval/run.py -m MODEL examples/eval/*.jsonl [--out-dir eval-results] [--herd build/tools/herd/herd]
                               [-- EXTRA HERD EVAL FLAGS, e.g. --concurrency 32 --device cpu]

Standard library only; matplotlib is optional (without it the plot is skipped).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def find_herd(given):
    if given:
        return given
    for candidate in (shutil.which("herd"), os.path.join(HERE, "..", "..", "build", "tools", "herd", "herd")):
        if candidate and os.path.exists(candidate):
            return candidate
    sys.exit("run.py: no herd binary found; pass --herd PATH")


def evaluate(herd, model, tasks, out_dir, extra):
    name = os.path.splitext(os.path.basename(tasks))[0]
    out = os.path.join(out_dir, name + ".results.jsonl")
    summary = os.path.join(out_dir, name + ".summary.json")
    cmd = [herd, "eval", "-m", model, "--tasks", tasks, "--out", out, "--summary", summary, *extra]
    print("+ " + " ".join(cmd), file=sys.stderr)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # progress stays on the terminal's stderr
    if p.returncode != 0:
        sys.exit(f"run.py: herd eval failed on {tasks} (exit {p.returncode})")
    with open(summary, encoding="utf-8") as f:
        return json.load(f)


def rows(summaries):
    """(task, group, metric, value) for every reported number: the micro average, the macro one when there are subjects."""
    for s in summaries:
        for task, t in s["tasks"].items():
            for metric, value in t["metrics"].items():
                yield task, "micro", metric, value
            for metric, value in t.get("macro", {}).items():
                yield task, "macro", metric, value


def plot(table, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("run.py: matplotlib is not installed; no plot", file=sys.stderr)
        return
    labels = [f"{task}\n{metric} ({group})" for task, group, metric, _ in table]
    values = [v for *_, v in table]
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(values)), 4))
    ax.bar(range(len(values)), values, color="#4c72b0")
    ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    for i, v in enumerate(values):
        ax.text(i, v + 0.01, f"{v:.3f}", ha="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"run.py: plot in {path}", file=sys.stderr)


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--model", required=True)
    p.add_argument("tasks", nargs="+", help="task files (docs/eval.md)")
    p.add_argument("--out-dir", default="eval-results")
    p.add_argument("--herd", help="the herd binary (default: on PATH, else build/tools/herd/herd)")
    args = p.parse_args(argv)
    herd = find_herd(args.herd)
    os.makedirs(args.out_dir, exist_ok=True)
    summaries = [evaluate(herd, args.model, t, args.out_dir, extra) for t in args.tasks]
    table = list(rows(summaries))
    width = max(len(t) for t, *_ in table) if table else 4
    print(f"{'task':<{width}}  {'average':<7}  {'metric':<10}  score")
    for task, group, metric, value in table:
        print(f"{task:<{width}}  {group:<7}  {metric:<10}  {value:.4f}")
    for s in summaries:
        if s["n_run"]:
            print(f"# {s['tasks_file']}: {s['n_run']} items at {s['items_per_s']:.2f} items/s, "
                  f"{s['tokens_per_s']:.0f} tok/s", file=sys.stderr)
    plot(table, os.path.join(args.out_dir, "scores.png"))


if __name__ == "__main__":
    main()
