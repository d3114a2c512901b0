"""Summaries of the rounds (medians, spreads, per-round ratios, fractions of the bandwidth bound),
printed as Markdown tables and drawn as a bar plot of the ratios."""
import statistics


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(model, tests, batch, bandwidth_gbps):
    """Adds model['summary'] from model['rounds']: for each test the two engines' tok/s, the median and
    spread of the per-round ratios herd / llama.cpp, and for decode tests each engine's fraction of the
    bound bandwidth / bytes of weights per token; and herd's batch decode against its batch-1 decode."""
    rounds = model["rounds"]
    bound = bandwidth_gbps * 1e9 / model["weight_bytes_per_token"]  # decode steps per second
    s = {"bound_tok_s": bound}
    for t in tests:
        h = [r["herd"][t] for r in rounds]
        c = [r["llamacpp"][t] for r in rounds]
        row = {"herd": spread(h), "llamacpp": spread(c), "ratio": spread([a / b for a, b in zip(h, c)])}
        if t.startswith("tg"):
            row["herd_of_bound"] = row["herd"]["median"] / bound
            row["llamacpp_of_bound"] = row["llamacpp"]["median"] / bound
        s[t] = row
    for t in tests:
        if t.startswith("tg") and f"{t} b{batch}" in rounds[0]["herd"]:
            hb = [r["herd"][f"{t} b{batch}"] for r in rounds]
            s[f"{t} b{batch}"] = {
                "herd": spread(hb),
                "vs_batch1": spread([b / r["herd"][t] for b, r in zip(hb, rounds)]),
                # A step of `batch` sequences reads the weights once for all of them.
                "herd_of_bound": statistics.median(hb) / (bound * batch)}
    model["summary"] = s


def _tok(x):
    return f"{x['median']:.1f} ({x['min']:.1f}–{x['max']:.1f})"


def _ratio(x, unit=""):
    return f"{x['median']:.2f}{unit} ({x['min']:.2f}–{x['max']:.2f})"


def table(model, tests, batch):
    """Markdown: a heading line and one table for the model."""
    s = model["summary"]
    gb = model["weight_bytes_per_token"] / 1e9
    types = ", ".join(f"{n} {k}" for k, n in sorted(model["tensor_types"].items(), key=lambda kv: -kv[1]))
    lines = [f"**{model['title']}** ({types}): {gb:.3f} GB of weights per token, "
             f"bandwidth bound {s['bound_tok_s']:.1f} tok/s", "",
             "| test | herd tok/s | llama.cpp tok/s | herd / llama.cpp | herd, of bound | llama.cpp, of bound |",
             "|---|---|---|---|---|---|"]
    for t in tests:
        r = s[t]
        frac = [f"{r[k] * 100:.0f}%" if k in r else "" for k in ("herd_of_bound", "llamacpp_of_bound")]
        lines.append(f"| {t} | {_tok(r['herd'])} | {_tok(r['llamacpp'])} | {_ratio(r['ratio'])} | {frac[0]} | {frac[1]} |")
    for t in tests:
        r = s.get(f"{t} b{batch}")
        if r:
            lines.append(f"| {t}, {batch} sequences (herd only) | {_tok(r['herd'])} | | "
                         f"{_ratio(r['vs_batch1'], '×')} of herd's batch 1 | {r['herd_of_bound'] * 100:.0f}% of {batch}× | |")
    return "\n".join(lines)


def plot(models, tests, path, title):
    """Bars of herd / llama.cpp per model and test (median of the rounds, whiskers min–max)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(models), 3.6), dpi=100)
    width = 0.8 / len(tests)
    for i, t in enumerate(tests):
        xs = [k + (i - (len(tests) - 1) / 2) * width for k in range(len(models))]
        r = [m["summary"][t]["ratio"] for m in models]
        med = [x["median"] for x in r]
        err = [[x["median"] - x["min"] for x in r], [x["max"] - x["median"] for x in r]]
        bars = ax.bar(xs, med, width, yerr=err, capsize=3, label=t)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in med], fontsize=7, padding=2)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(models)), [m["short"] for m in models], fontsize=8)
    ax.set_ylabel("herd / llama.cpp (tok/s)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
