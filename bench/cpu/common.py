"""What the CPU benchmark's parts share: progress lines, failures that end the run with one clear
message, and subprocesses whose failure says what was being done."""
import subprocess
import sys
import time


class BenchError(Exception):
    """A step that cannot go on (a build, a download, a run); run.py prints it and exits 1."""


_T0 = time.monotonic()


def log(msg):
    print(f"[bench {time.monotonic() - _T0:6.0f}s] {msg}", file=sys.stderr, flush=True)


def run(cmd, what, timeout=1800, with_stderr=False):
    """Runs cmd (a list) and returns its stdout (and stderr after it, with_stderr); on failure raises
    BenchError naming `what` with the end of its stderr."""
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        raise BenchError(f"{what}: {e}") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: no result after {timeout} s ({' '.join(map(str, cmd))})") from None
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-15:])
        raise BenchError(f"{what} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return p.stdout + p.stderr if with_stderr else p.stdout
