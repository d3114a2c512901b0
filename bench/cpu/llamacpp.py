"""llama.cpp's `llama-bench` and `llama-quantize`, built from the llama.cpp tree that the
llama-cpp-python source distribution on PyPI vendors (the registry this project may reach), and
running `llama-bench`."""
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path

from common import BenchError, log, run

# The version the project's llama.cpp references were made with (docs/gguf.md).
LLAMA_CPP_PYTHON = "0.3.36"
TARGETS = ["llama-bench", "llama-quantize"]


def _vendor_version(sdist_dir):
    """The llama.cpp commit llama-cpp-python's CHANGELOG names for this release, and ggml's version
    (the vendored tree has no git history, so llama-bench itself reports commit 'unknown')."""
    commit = None
    changelog = (sdist_dir / "CHANGELOG.md").read_text(errors="replace")
    section = changelog.split(f"## [{LLAMA_CPP_PYTHON}]", 1)
    if len(section) == 2:
        m = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section[1].split("\n## ", 1)[0])
        commit = m.group(1) if m else None
    ggml = (sdist_dir / "vendor/llama.cpp/ggml/CMakeLists.txt").read_text()
    parts = [re.search(rf"set\(GGML_VERSION_{k} (\d+)\)", ggml) for k in ("MAJOR", "MINOR", "PATCH")]
    return {"llama_cpp_python": LLAMA_CPP_PYTHON, "llama_cpp_commit": commit,
            "ggml": ".".join(p.group(1) for p in parts) if all(parts) else None}


def _configure_args(source, build_dir):
    args = ["-S", str(source), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
            "-DGGML_NATIVE=ON"]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    if shutil.which("ccache"):
        args += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
    if "amx_int8" in Path("/proc/cpuinfo").read_text():
        # ggml's AMX matrix product crashes (SIGSEGV in ggml_backend_amx_mul_mat, a known, unfixed
        # llama.cpp bug) on AMX machines such as this benchmark's; without it llama.cpp uses its AVX-512
        # kernels. Explicit -mno-* flags win over -march=native in GCC and Clang.
        no_amx = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
        args += [f"-DCMAKE_C_FLAGS={no_amx}", f"-DCMAKE_CXX_FLAGS={no_amx}"]
    return args


def build(scratch):
    """Returns {'bench': path, 'quantize': path, 'version': {...}}; builds once (again when the
    configuration changes), then reuses."""
    root = Path(scratch) / "llamacpp"
    sdist_dir = root / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    build_dir = root / "build"
    bins = {t: build_dir / "bin" / t for t in TARGETS}
    if not sdist_dir.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = root / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
        if not archive.exists():
            log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON} source distribution (77 MB) from PyPI")
            run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                 "--dest", root, f"llama-cpp-python=={LLAMA_CPP_PYTHON}"],
                "pip download of llama-cpp-python (is PyPI reachable?)", timeout=900)
        log(f"unpacking {archive.name}")
        with tarfile.open(archive) as tf:
            tf.extractall(root, filter="data")
    configure = _configure_args(sdist_dir / "vendor/llama.cpp", build_dir)
    stamp = build_dir / "herd-bench-configure.txt"
    if all(b.exists() for b in bins.values()) and stamp.exists() and stamp.read_text() == "\n".join(configure):
        log(f"llama.cpp: using the build in {build_dir}")
    else:
        log(f"llama.cpp: building {' and '.join(TARGETS)} in {build_dir} (tens of minutes on 2 cores; once)")
        run(["cmake", *configure], "configuring llama.cpp (needs cmake and a C++ compiler)")
        run(["nice", "-n", "19", "cmake", "--build", build_dir, "-j2", "--target", *TARGETS],
            "building llama.cpp", timeout=4 * 3600)
        missing = [str(b) for b in bins.values() if not b.exists()]
        if missing:
            raise BenchError(f"the llama.cpp build finished without {', '.join(missing)}")
        stamp.write_text("\n".join(configure))
    version = _vendor_version(sdist_dir)
    version["llama_bench_version"] = " ".join(run([bins["llama-bench"], "--version"], "llama-bench --version",
                                                      with_stderr=True).split())
    return {"bench": bins["llama-bench"], "quantize": bins["llama-quantize"], "version": version}


def quantize(tools, src, dst, qtype, threads):
    """llama.cpp's quantizer, as its users run it (its own choice of types per tensor for *_M)."""
    log(f"llama-quantize {src.name} -> {qtype}")
    part = dst.with_name(dst.name + ".part")
    run(["nice", "-n", "19", tools["quantize"], src, part, qtype, str(threads)], f"llama-quantize to {qtype}")
    part.rename(dst)


def bench(tools, model, threads, n_prompt, n_gens, inner_reps):
    """One llama-bench invocation: pp n_prompt and tg n for each n in n_gens, each run inner_reps times
    without warm-up; returns ({'pp128': best tok/s, 'tg32': ...}, llama-bench's first JSON row)."""
    out = run([tools["bench"], "-m", model, "-t", str(threads), "-p", str(n_prompt),
               "-n", ",".join(map(str, n_gens)), "-r", str(inner_reps), "--no-warmup", "-o", "json"],
              f"llama-bench on {Path(model).name}", timeout=1800)
    try:
        rows = json.loads(out)
    except json.JSONDecodeError as e:
        raise BenchError(f"llama-bench printed no JSON ({e}): {out[:200]!r}") from None
    result = {}
    for r in rows:
        test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        result[test] = max(r["samples_ts"])
    return result, rows[0]
