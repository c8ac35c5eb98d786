#!/usr/bin/env bash
# soak.sh: `make soak` (not part of make test). SOAK_SECONDS (default 600) of mixed load on
# the real server with --wal: retrying clients step 12 sessions with seq numbers while other
# clients open, step, read, subscribe to and close sessions; the server is killed with
# SIGKILL every SOAK_KILL_EVERY seconds (default 30) and restarted on its --state-dir.
# Prints the server's RSS over time and, at the end, the lost and duplicated steps (both
# must be 0) and the rest of tests/e2e/test_durable's checks (checkpoint-only SIGKILL,
# SIGTERM). Exits non-zero when any check fails.
#   tests/soak/soak.sh [BUILD]
set -u
cd "$(dirname "$0")/../.."
build=${1:-build}
bin="$build/tests/test_durable"
[ -x "$bin" ] || { echo "soak.sh: $bin missing (run make)" >&2; exit 1; }
echo "== soak: ${SOAK_SECONDS:-600} s, SIGKILL every ${SOAK_KILL_EVERY:-30} s"
SPIKESERVE_BUILD="$build" SPIKESERVE_DURABLE_SECONDS="${SOAK_SECONDS:-600}" \
    SPIKESERVE_DURABLE_KILL_EVERY="${SOAK_KILL_EVERY:-30}" SPIKESERVE_DURABLE_RSS_EVERY=15 \
    SPIKESERVE_DURABLE_MIXED=1 "$bin" 2>&1 |
    grep -v -E '^# ((POST|GET|DELETE) .*: (Couldn.t connect|Failure when receiving|Server returned nothing|Recv failure)|open session: status 0)'
exit "${PIPESTATUS[0]}"
