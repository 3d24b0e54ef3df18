#!/usr/bin/env bash
# Side-by-side benchmark of `echopool serve` against its peers (see BENCHMARKS.md).
#
# Builds echopool, the blocking peers (the root package's examples iterative, thread-per-conn and
# mutex-pool) and bench/peers (tokio and the helper programs) in release, then runs
# bench/compare.py, which starts each server pinned to CPU 0 and the load generator pinned to
# CPU 1, interleaves the servers round by round, and writes markdown tables of medians to
# $OUT_DIR/compare.md (raw runs in runs.jsonl).
#
# Environment (all optional):
#   CELL_SECONDS=5     measured seconds per run          (CELL_SECONDS=0.5 for a smoke run)
#   WARMUP_SECONDS=1   unmeasured load before each run
#   ROUNDS=3           runs per server per cell (A B A B ...)
#   CELLS=all          comma-separated subset, e.g. rr-8x64,oneshot-1,idle-1000,loadgen
#   SERVERS=all        comma-separated subset of echopool,thread-per-conn,mutex-pool,tokio,iterative
#   MAX_FOREIGN=0.05   repeat a run when other processes took more than this share of a CPU
#   MAX_SLOWDOWN=1.25  ... or when a calibration job ran this much slower than its best (busy host)
#   TRIES=4           ... up to this many tries in all, PAUSE_SECONDS=3 apart (the last is kept)
#   NICE=-10          priority of the servers and the load (other work on a shared machine)
#   OUT_DIR=target/compare
#   SUITE=exec         instead: `-H exec:cat` against tcpserver + cat (ucspi-tcp) and xinetd + cat
#                      (bench/compare_exec.py; installs ucspi-tcp and xinetd when missing, as
#                      root; CELLS from oneshot-1,oneshot-8,rr-8x64; about 3 minutes)
#
# A full run takes about 17 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v taskset >/dev/null || { echo "compare.sh: needs taskset (util-linux)" >&2; exit 1; }
[ "$(nproc --all)" -ge 2 ] || { echo "compare.sh: needs at least 2 CPUs" >&2; exit 1; }

if [ "${SUITE:-}" = exec ]; then
  missing=()
  command -v tcpserver >/dev/null || missing+=(ucspi-tcp)
  command -v xinetd >/dev/null || missing+=(xinetd)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "compare.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  echo "compare.sh: building echopool (release)" >&2
  timeout 1200 cargo build --release --bin echopool >&2
  export PYTHONDONTWRITEBYTECODE=1
  exec timeout 3600 python3 bench/compare_exec.py --echopool target/release/echopool \
      --out-dir "${OUT_DIR:-target/compare}"
fi

echo "compare.sh: building echopool and the peers (release)" >&2
timeout 1200 cargo build --release --bin echopool \
    --example iterative --example thread-per-conn --example mutex-pool >&2
(cd bench/peers && timeout 1200 cargo build --release >&2)

export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
exec timeout 3600 python3 bench/compare.py \
    --echopool target/release/echopool \
    --examples target/release/examples \
    --peers bench/peers/target/release \
    --out-dir "${OUT_DIR:-target/compare}"
