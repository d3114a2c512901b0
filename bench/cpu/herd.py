"""Running `herd bench` on a GGUF file on the CPU."""
import json
import subprocess
from pathlib import Path

from common import BenchError, run

# herd bench's KV cache budget: bounded and the same every run (128 + 64 tokens x 8 sequences fit
# many times over).
KV_MEMORY = "1GiB"


def commit(root):
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def bench(binary, model, threads, n_prompt, n_gen, batches, inner_reps):
    """One `herd bench` invocation; returns {(test, batch): best tok/s}, e.g. {('pp128', 1): 95.0, ...}.
    Each test runs inner_reps times in the process and the best is kept (like llama.cpp's)."""
    out = run([binary, "bench", "-m", model, "--device", "cpu", "--threads", str(threads), "-p", str(n_prompt),
               "-n", str(n_gen), "-b", ",".join(map(str, batches)), "--reps", str(inner_reps),
               "--kv-memory", KV_MEMORY, "--json"], f"herd bench on {Path(model).name}", timeout=1800)
    try:
        rows = json.loads(out)
    except json.JSONDecodeError as e:
        raise BenchError(f"herd bench printed no JSON ({e}): {out[:200]!r}") from None
    return {(r["test"], r["batch"]): r["tok_s_max"] for r in rows}
