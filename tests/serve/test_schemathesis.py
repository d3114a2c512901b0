#!/usr/bin/env python3
"""docs/openapi.yaml against `herd serve` with schemathesis: requests generated from the
description (valid and invalid) for a bounded time; no 5xx, and every status, content type and
response body as the description says.

Usage: test_schemathesis.py HERD_BINARY TESTS_DATA_DIR [SECONDS]. Exits 77 when schemathesis
cannot be installed.
"""
import os
import subprocess
import sys
import tempfile

import serve_fixture as F

venv = F.use_venv()
HERD, DATA = sys.argv[1], sys.argv[2]
SECONDS = sys.argv[3] if len(sys.argv) > 3 else "60"
SPEC = os.path.join(F.HERE, "..", "..", "docs", "openapi.yaml")

tmp = tempfile.mkdtemp(prefix="herd-serve-st-")
# A context of 256 tokens bounds every generated request's work (max_tokens up to 2^31 - 1).
model = F.make_model(HERD, DATA, tmp, context=256)
with F.Server(HERD, model, "-t", "1") as server:
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
    # One worker: hypothesis describes strategies with ast.parse, which CPython 3.11 does not allow in two
    # threads at once ("AST constructor recursion depth mismatch" ended a two-worker run in the tool itself).
    p = subprocess.run([os.path.join(venv, "bin", "st"), "run", SPEC, "--url", server.url, "--checks", checks,
                        "--phases", "coverage,fuzzing", "-n", "30", "--max-time", SECONDS, "--workers", "1",
                        "--generation-database", "none", "--seed", "1", "--no-color", "--request-timeout", "30"],
                       cwd=tmp, capture_output=True, text=True, timeout=int(SECONDS) + 120)
    print(p.stdout[-6000:], p.stderr[-2000:])
    F.check("schemathesis finds no issue", p.returncode == 0 and " passed" in p.stdout, f"exit {p.returncode}")
    st, health = server.request("GET", "/health")
    F.check("the server is healthy after it", server.proc.poll() is None and st == 200, (st, health))
    F.check("no KV block held after it", server.wait_blocks_free(), server.metric("herd_kv_blocks_used"))
F.report()
