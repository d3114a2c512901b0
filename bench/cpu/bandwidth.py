"""The machine's memory read bandwidth, measured by membw.c (built here with the system C compiler)."""
import os
import statistics
from pathlib import Path

from common import BenchError, log, run

SOURCE = Path(__file__).resolve().parent / "membw.c"
WHAT = ("read bandwidth from DRAM: {threads} threads each sum 64-bit words of their slice of a {mib} MiB "
        "buffer (L3: {l3}); the best of {passes} passes, half before and half after the benchmarks; "
        "1 GB = 1e9 bytes")


def l3_bytes():
    """The last-level cache's size as the kernel reports it, or None."""
    try:
        size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
    except OSError:
        return None
    unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1], 1)
    return int(size.rstrip("KMG")) * unit


def buffer_mib():
    """Four times the L3 cache, at least 1 GiB, at most a quarter of the memory available."""
    want = max(1 << 30, 4 * (l3_bytes() or 0))
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:"))
        want = min(want, avail // 4)
    except (OSError, StopIteration):
        pass
    return want >> 20


def measure(scratch, threads, mib, reps=7):
    """GB/s of each of reps passes over mib MiB (membw is built first when missing or older than its
    source)."""
    exe = Path(scratch) / "membw" / "membw"
    if not exe.exists() or exe.stat().st_mtime < SOURCE.stat().st_mtime:
        exe.parent.mkdir(parents=True, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        run([cc, "-O3", "-march=native", "-fopenmp", SOURCE, "-o", exe], "compiling membw.c (needs a C compiler with OpenMP)")
    log(f"memory bandwidth: {threads} threads over {mib} MiB, {reps} passes")
    samples = [float(x) for x in run([exe, mib, threads, reps], "membw").split()]
    if not samples:
        raise BenchError("membw printed nothing")
    return samples


def summary(samples, threads, mib):
    """The bound uses the best pass: other jobs on the machine only ever slow a pass down."""
    l3 = l3_bytes()
    return {"gbps": max(samples), "gbps_median": statistics.median(samples), "samples": samples,
            "buffer_mib": mib,
            "what": WHAT.format(threads=threads, mib=mib, passes=len(samples),
                                l3=f"{l3 >> 20} MiB" if l3 else "unknown")}
