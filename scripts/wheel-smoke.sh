#!/usr/bin/env bash
# What a user without Rust gets from dist/ (built by `make wheel`):
#  1. the abi3 wheel in a fresh virtualenv, no cargo or rustc on PATH: the native engine is inside and runs
#     generate -> backfill (JSON Lines and Parquet) -> fit with REWARDSTREAM_ENGINE=native;
#  2. the sdist over it, still without Rust: the install succeeds and says it skipped the native engine, the
#     engine falls back to Python with a one-line warning, and asking for native by name is a clear error.
# Usage: scripts/wheel-smoke.sh [python3.11 or later]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
python="$("${1:-python3}" -c 'import sys; print(sys.executable)')"  # the real interpreter, not a shim on PATH
wheels=(dist/rewardstream-*-cp311-abi3-*.whl)
sdists=(dist/rewardstream-*.tar.gz)
[ ${#wheels[@]} -eq 1 ] && [ -f "${wheels[0]}" ] || { echo "wheel-smoke: expected one abi3 wheel in dist/ (make wheel)" >&2; exit 1; }
[ ${#sdists[@]} -eq 1 ] && [ -f "${sdists[0]}" ] || { echo "wheel-smoke: expected one sdist in dist/ (make wheel)" >&2; exit 1; }
wheel="$root/${wheels[0]}"
sdist="$root/${sdists[0]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# PATH without any directory that holds a Rust toolchain
norust=""
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
    [ -x "$d/cargo" ] || [ -x "$d/rustc" ] || [ -x "$d/rustup" ] || norust="${norust:+$norust:}$d"
done
export PATH="$norust"
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
    echo "wheel-smoke: could not hide the Rust toolchain from PATH" >&2; exit 1
fi
unset REWARDSTREAM_ENGINE
cd "$work"  # nothing of the source tree on sys.path
started=$SECONDS

echo "== wheel $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB) into a fresh virtualenv, no Rust on PATH"
"$python" -m venv venv
venv/bin/pip install -q --disable-pip-version-check "$wheel"
bin="$work/venv/bin"
"$bin/python" -c 'import pipeline._native, pipeline.native as n; assert n.available(); print("native engine:", pipeline._native.__file__)'
"$bin/python" - <<'PY'
from pathlib import Path
from pipeline.synthetic import LogSpec, generate, write_engine_config
Path("log.jsonl").write_text("\n".join(generate(LogSpec(users=300, seed=5, bad_lines=3))) + "\n")
write_engine_config(Path("config.toml"))
PY
REWARDSTREAM_ENGINE=native "$bin/rewardstream" backfill --input log.jsonl --output rewards.jsonl --config config.toml --quiet
REWARDSTREAM_ENGINE=native "$bin/rewardstream" backfill --input log.jsonl --output rewards.parquet --format parquet \
    --config config.toml --quiet > /dev/null
"$bin/python" -c '
import pyarrow.parquet as pq
n = sum(1 for _ in open("rewards.jsonl"))
rows = pq.read_metadata("rewards.parquet").num_rows
assert n > 0 and rows == n, (n, rows)
print(f"parquet: {rows} rewards, as many as the JSON Lines")'
"$bin/rewardstream" fit --input log.jsonl --output weights.json --config config.toml --engine native | tail -1
echo "== wheel: $((SECONDS - started)) s"

echo "== sdist $(basename "$sdist") over it, still no Rust on PATH"
started=$SECONDS
"$bin/pip" install -v --disable-pip-version-check --no-deps --force-reinstall "$sdist" > sdist-install.log 2>&1 \
    || { tail -40 sdist-install.log >&2; exit 1; }
grep -q "can't find Rust compiler" sdist-install.log || { echo "wheel-smoke: the sdist install did not say it skipped the native engine" >&2; exit 1; }
echo "the install said: $(grep -m1 "can't find Rust compiler" sdist-install.log)"
if "$bin/python" -c 'import pipeline._native' 2>/dev/null; then
    echo "wheel-smoke: the sdist install without Rust still has a native module" >&2; exit 1
fi
# the summary to a file, not into `head`: head closing the pipe early made the backfill fail on a broken pipe
"$bin/rewardstream" backfill --input log.jsonl --output fallback.jsonl --config config.toml --quiet \
    > fallback.out 2> fallback.err
head -1 fallback.out
cat fallback.err
[ "$(grep -c "the native engine is not installed" fallback.err)" = 1 ] || { echo "wheel-smoke: no one-line fallback warning" >&2; exit 1; }
cmp rewards.jsonl fallback.jsonl && echo "python engine: the same rewards, byte for byte"
if REWARDSTREAM_ENGINE=native "$bin/rewardstream" backfill --input log.jsonl --output x.jsonl --config config.toml \
        --quiet 2> native.err; then
    echo "wheel-smoke: REWARDSTREAM_ENGINE=native without the native module did not fail" >&2; exit 1
fi
echo "asking for native: $(cat native.err)"
"$bin/rewardstream" fit --input log.jsonl --output weights-python.json --config config.toml 2>/dev/null | tail -1
echo "== sdist: $((SECONDS - started)) s"
