#!/usr/bin/env bash
# Creates (once) and prints the path of the Python virtual environment the server tests use: the
# official `openai` client and `schemathesis`, pinned. Idempotent: when the environment already
# holds these versions it only prints its path. Exits 77 (the tests' skip code) with one line on
# stderr when it cannot be made (no PyPI), so the tests that need it skip instead of failing.
# HERD_SERVE_VENV overrides the location (default ~/.cache/herd/serve-venv).
set -euo pipefail
VENV=${HERD_SERVE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/herd/serve-venv}
PINS=(openai==3.60.0 schemathesis==4.32.5)
STAMP="$VENV/.herd-pins"
if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "${PINS[*]}" ]]; then
  echo "$VENV"
  exit 0
fi
# Two tests may ask at once: one builds, the other waits for it.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock -w 600 9 || { echo "venv.sh: timed out waiting for another run to build $VENV" >&2; exit 77; }
if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "${PINS[*]}" ]]; then
  echo "$VENV"
  exit 0
fi
log=$(mktemp)
if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --disable-pip-version-check -q --timeout 30 "${PINS[@]}"; } >"$log" 2>&1; then
  echo "venv.sh: cannot install ${PINS[*]} into $VENV (is PyPI reachable?): $(tail -1 "$log")" >&2
  rm -f "$log"
  exit 77
fi
rm -f "$log"
echo "${PINS[*]}" >"$STAMP"
echo "$VENV"
