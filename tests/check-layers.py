#!/usr/bin/env python3
"""Enforces docs/architecture.md, "Layers": which module may include which. Exits 1 listing every violation.

Usage: check-layers.py REPO_ROOT
"""
import os
import re
import sys

# module (path prefix) -> include prefixes it may use. Anything in quotes that is not one of
# these and does not exist beside the including file is a violation. System headers (<...>)
# are checked only for CUDA, which only kernels/ and src/backend/cuda may see.
ALLOWED = {
    "kernels/": ["kernels/"],
    "src/common/": ["common/"],
    "src/tokenizer/": ["common/", "tokenizer/"],
    "src/kv/": ["common/", "kv/"],
    "src/sampling/": ["common/", "sampling/"],
    "src/chat/": ["common/", "chat/", "tokenizer/"],
    "src/rag/": ["common/", "rag/", "tokenizer/"],
    "src/backend/cpu/": ["common/", "backend/backend.h", "backend/cpu/"],
    "src/backend/cuda/": ["common/", "backend/backend.h", "backend/cuda/", "kernels/", "dist/communicator.h",
                          "dist/tcp-star.h", "dist/tcp-communicator.h"],
    "src/backend/": ["common/", "backend/", "dist/"],
    "src/dist/": ["common/", "dist/", "backend/backend.h"],
    "src/model/": ["common/", "model/", "backend/backend.h", "dist/communicator.h"],
    "src/engine/": ["common/", "model/", "kv/", "tokenizer/", "chat/", "sampling/", "rag/", "dist/", "engine/",
                    "backend/backend.h", "backend/group.h", "herd/"],
    "include/herd/": ["herd/"],
    "tools/": ["herd/"],
}
CUDA_OK = ("kernels/", "src/backend/cuda/")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
CUDA_HEADERS = re.compile(r"^(cuda|cublas|cuda_runtime|cuda_bf16|cuda_fp16|nccl|cub/|thrust/)")


def module_of(rel):
    best = None
    for m in ALLOWED:
        if rel.startswith(m) and (best is None or len(m) > len(best)):
            best = m
    return best


def main(root):
    bad = []
    for top in ("kernels", "src", "include", "tools"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if not f.endswith((".h", ".cpp", ".cu", ".cuh", ".inc")):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root)
                mod = module_of(rel)
                if mod is None:
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        kind, inc = m.groups()
                        if kind == "<":
                            if CUDA_HEADERS.match(inc) and not rel.startswith(CUDA_OK):
                                bad.append(f"{rel}:{n}: includes CUDA header <{inc}>")
                            continue
                        local = os.path.normpath(os.path.join(dirpath, inc))
                        if os.path.exists(local) and module_of(os.path.relpath(local, root)) == mod:
                            continue  # a file of the same module, by its path from the including file
                        if not any(inc.startswith(p) for p in ALLOWED[mod]):
                            bad.append(f"{rel}:{n}: {mod} may not include \"{inc}\"")
    for b in bad:
        print(b)
    print(f"layering: {len(bad)} violations" if bad else "layering: ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
