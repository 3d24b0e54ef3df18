#!/usr/bin/env bash
# Side-by-side benchmark of `echopool serve` against its peers (see BENCHMARKS.md).
#
# Builds echopool, the blocking peers (the root package's examples iterative, thread-per-conn and
# mutex-pool) and bench/peers (tokio and the helper programs) in release, then runs
# bench/compare.py, which starts each server pinned to CPU 0 and the load generator pinned to
# CPU 1, interleaves the servers round by round, each run on a fresh server, and writes markdown
# tables of medians to $OUT_DIR/compare.md, beside the raw runs (runs.jsonl), the servers'
# stderr (servers.log) and, when the idle-open cells ran, the plots idle-p99.svg and
# idle-rss.svg (compare.md links them by relative name).
#
# Cells (CELLS):
#   rr-{1,8,64}x{64,4k}  request-response: 1, 8 or 64 connections, 64 B or 4 KiB messages
#   oneshot-{1,8}        connect, one 64 B message, close, in 1 or 8 loops
#   stream-{1,4}x64k     64 KiB chunks written continuously on 1 or 4 connections
#                        (each: throughput, server CPU and context switches per operation, p99)
#   idle-1000            1,000 silent connections held by bench/peers' idle-conns: server RSS and
#                        threads (pools with 1,000 workers)
#   idle-open-1000       1,000 or 10,000 connections held by `echopool bench --mode idle`, 1% of
#   idle-open-10000      them speaking per second (open loop, latency from the scheduled send
#                        time): p50/p99/p99.9, unanswered, unsent, failed connects, server RSS,
#                        threads, CPU and context switches per message, p99 and RSS ÷ tokio's;
#                        echopool with --workers 16; measured after the connect phase
#                        (bench/compare_idle.py says how)
#   loadgen              the load generator checked against a naive std client, same server
#
# Servers (SERVERS), in the order each round runs them:
#   echopool             echopool serve -q -w 128 (-w 1000 in idle-1000, -w 16 in idle-open-*)
#   echopool-baseline    BASELINE's build with echopool's flags (only when BASELINE is set)
#   echopool-parkoff     echopool with --park off: the textbook pool, a worker holds its
#                        connection to the end (a VARIANTS entry built in)
#   ...                  every VARIANTS entry
#   thread-per-conn, mutex-pool (128 workers, 1,000 in idle-1000), iterative (only where
#                        clients take turns): the root package's examples, which
#                        docs/from-the-textbook.md teaches with
#   tokio                bench/peers' tokio-echo (one runtime worker: it is pinned to one CPU)
# The idle-open cells run the echopool servers, thread-per-conn and tokio.
#
# Environment (all optional):
#   CELL_SECONDS=5     measured seconds per run          (CELL_SECONDS=0.5 for a smoke run)
#   WARMUP_SECONDS=1   unmeasured load before each run (in idle-open: the bench's --warmup)
#   IDLE_SECONDS=      measured seconds of an idle-open run [default: CELL_SECONDS, at least 10:
#                      1% of 1,000 connections is 10 messages a second]
#   ROUNDS=3           runs per server per cell (A B A B ...)
#   CELLS=all          comma-separated subset, e.g. rr-8x64,oneshot-1,idle-open-1000,loadgen
#   SERVERS=all        comma-separated subset of the servers above, e.g. echopool,echopool-parkoff
#   VARIANTS=          more echopool servers, `NAME=FLAGS;NAME=FLAGS`: echopool serve with FLAGS
#                      added (split as a shell would; a variant's -w/--workers replaces the
#                      cell's), e.g. VARIANTS='echopool-eager=--park-after 0;echopool-w16=-w 16'.
#                      A NAME already built in (echopool-parkoff) is redefined.
#   BASELINE=path      another echopool build, run as `echopool-baseline` (a change measured
#                      side by side with the code before it)
#   MAX_FOREIGN=0.05   repeat a run when other processes took more than this share of a CPU
#   MAX_SLOWDOWN=1.25  ... or when a calibration job ran this much slower than its best (busy host)
#   TRIES=4            ... up to this many tries in all, PAUSE_SECONDS=3 apart (the last is kept)
#   NICE=-10           priority of the servers and the load (other work on a shared machine)
#   OUT_DIR=target/compare
#   SUITE=exec         instead: `-H exec:cat` against tcpserver + cat (ucspi-tcp) and xinetd + cat
#                      (bench/compare_exec.py; installs ucspi-tcp and xinetd when missing, as
#                      root; CELLS from oneshot-1,oneshot-8,rr-8x64; about 3 minutes)
# The servers get no ECHOPOOL_* variables from this environment: only the flags above (and
# VARIANTS) configure echopool. The open-file limit is raised to the hard limit for every server
# (echopool raises its own; tokio-echo and thread-per-conn need it for 10,000 connections).
#
# A full run (every cell and server, defaults) takes about 35 minutes, more when disturbed runs
# are repeated (estimated from single runs: a throughput run takes ~7 s, an idle-open run 12-25 s,
# thread-per-conn's at 10,000 connections ~60 s, 45 s of them connecting). Issue 8's comparisons:
#   CELLS=idle-open-1000,idle-open-10000 SERVERS=echopool,echopool-parkoff,tokio,thread-per-conn
#     bench/compare.sh                                                      # about 10 minutes
#   ROUNDS=5 SERVERS=echopool,echopool-parkoff,tokio CELLS=rr-1x64,rr-8x64,rr-64x64,rr-1x4k,\
#     rr-8x4k,rr-64x4k,oneshot-1,oneshot-8,stream-1x64k,stream-4x64k bench/compare.sh   # ~20 min
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
exec timeout 10800 python3 bench/compare.py \
    --echopool target/release/echopool \
    --examples target/release/examples \
    --peers bench/peers/target/release \
    --out-dir "${OUT_DIR:-target/compare}"
