#!/usr/bin/env bash
# Starts a release shoot-server on the embedded stack for load runs: fresh temporary data
# directory, 127.0.0.1:${PORT:-18100}, pinned to core 0 when taskset exists, no per-user rate
# limit, cheap password hashing (fast set-up of thousands of users), big groups allowed.
# Prints the server pid on stdout; stop it with `kill <pid>`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p shoot-server -p shoot-loadtest >&2
PORT="${PORT:-18100}"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/shoot-load.XXXXXX")"
PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN=(taskset -c 0); fi
SHOOT_DATA_DIR="$DATA" SHOOT_HTTP_ADDR="127.0.0.1:$PORT" \
SHOOT_LIMITS_MESSAGES_PER_SECOND=0 SHOOT_PASSWORD_MEMORY_KIB=8 SHOOT_PASSWORD_ITERATIONS=1 \
SHOOT_LIMITS_GROUP_MAX_MEMBERS=100000 SHOOT_LINK_PREVIEW_ENABLED=false SHOOT_LOG_LEVEL="${SHOOT_LOG_LEVEL:-warn}" \
  "${PIN[@]}" target/release/shoot-server >"$DATA/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then echo "$PID"; exit 0; fi
  sleep 0.1
done
echo "shoot-server did not become healthy; log: $DATA/server.log" >&2
kill "$PID" 2>/dev/null || true
exit 1
