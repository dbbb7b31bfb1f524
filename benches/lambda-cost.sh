#!/usr/bin/env bash
# CPU per issuance in Lambda mode, and what a million issuances would cost on
# arm64 Lambda at 128 MB and 256 MB, against a local Parameter Store
# (moto_server) and cargo lambda's runtime API emulator on loopback.
#
# Starts the function once. One invocation (queued before the start, as in
# benches/lambda-cold-start.sh) is the cold start; then N warm invocations,
# one after another from a single curl process (one transfer at a time over
# a kept-alive connection, so the client stays cheap), every answer checked
# for a 201. The function's CPU time is utime+stime of its process
# (/proc/PID/stat, clock ticks, all threads including exited ones): ticks are
# coarse (10 ms at 100 Hz), so the warm figure is the delta over N
# invocations divided by N. The sum of sum_exec_runtime over the live threads
# (/proc/PID/task/*/schedstat, ns) is shown next to it as a finer check, and
# is the better figure for the single cold start. CPU time is what the
# process itself ran, so it holds on a machine busy with other work (the
# wall-clock times do not). Logging is the binary's default (info, JSON,
# one audit line per issuance to stderr, here /dev/null) unless SESSION_CA_LOG
# says otherwise.
#
# The cost model (assumptions, printed with the results):
#   - Lambda gives a function CPU in proportion to its memory, 1,769 MB = one
#     vCPU, so this single-threaded, CPU-bound handler takes about
#     CPU time x 1769 / memory_MB of wall time; waiting on the runtime API is
#     ignored;
#   - a Graviton (arm64) core is about as fast as the measuring machine's
#     core;
#   - duration billed rounded up to the next 1 ms; arm64 list prices in
#     us-east-1: $0.0000133334 per GB-second, $0.20 per million requests.
#
#   benches/lambda-cost.sh [N]     (default 2000; needs scripts/test's .venv/)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2000}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer" >&2; exit 1; }
source benches/lambda-env.sh
lambda_env_start

# utime+stime of the whole process, in clock ticks (fields 14 and 15; the
# name in parentheses is cut off first).
cpu_ticks() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; awk '{print $12 + $13}' <<<"$s"; }
# sum_exec_runtime of the live threads, in ns.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f\n", t}'; }
hz=$(getconf CLK_TCK)

# Cold: queue the first event, then start the function.
curl -sS -o "$work/cold.json" -X POST "$invoke_url" --data-binary @"$fixture" & invoke=$!
sleep 0.3
start_function
pids+=("$fn")
wait "$invoke"
grep -q '"statusCode":201' "$work/cold.json" || { echo "cold invocation: no 201: $(head -c 300 "$work/cold.json")" >&2; exit 1; }
sleep 0.2 # let it post the answer and go back to waiting for the next event
cold_ticks=$(cpu_ticks "$fn")
cold_ns=$(cpu_ns "$fn")

# Warm: N invocations in sequence from one curl process.
{
  for i in $(seq "$runs"); do
    ((i > 1)) && echo next
    printf 'url = "%s"\nrequest = "POST"\ndata-binary = "@%s"\nsilent\nshow-error\n' "$invoke_url" "$fixture"
    # One answer per line, so that they can be counted.
    echo 'write-out = "\n"'
  done
} >"$work/curl.conf"
t0=$(date +%s%N)
curl -K "$work/curl.conf" >"$work/warm.out"
t1=$(date +%s%N)
sleep 0.2
warm_ticks=$(( $(cpu_ticks "$fn") - cold_ticks ))
warm_ns=$(( $(cpu_ns "$fn") - cold_ns ))
ok=$(grep -c '"statusCode":201' "$work/warm.out" || true)
((ok == runs)) || { echo "warm invocations: $ok of $runs answered 201; first other answer: $(grep -v '"statusCode":201' "$work/warm.out" | head -c 300)" >&2; exit 1; }
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$fn/status")
kill -0 "$fn" 2>/dev/null || { echo "the function exited" >&2; exit 1; }

python3 - "$hz" "$runs" "$cold_ticks" "$cold_ns" "$warm_ticks" "$warm_ns" "$hwm_kb" "$(( (t1 - t0) / 1000 ))" \
  "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "$(uname -m)" "$(nproc)" "$profile" <<'EOF'
import math, sys
hz, runs, cold_ticks, cold_ns, warm_ticks, warm_ns, hwm_kb, wall_us = map(int, sys.argv[1:9])
cpu_model, arch, ncpu, profile = sys.argv[9:13]
tick_us = 1e6 / hz
warm_us = warm_ticks * tick_us / runs
warm_sched_us = warm_ns / 1e3 / runs
GB_S, PER_REQ, FULL_MB = 0.0000133334, 0.20e-6, 1769

print(f"## Lambda mode, CPU per issuance ({profile} build, default features: ring; {runs} warm invocations)\n")
print("| | |\n|---|---:|")
print(f"| cold start (start to first 201), CPU | **{cold_ns / 1e6:.1f} ms** by schedstat ({cold_ticks} ticks of {tick_us / 1e3:.0f} ms by utime+stime, too coarse for one start) |")
print(f"| warm invocation, CPU | **{warm_us:.0f} µs** ({warm_ticks} ticks of {tick_us / 1e3:.0f} ms / {runs}); {warm_sched_us:.0f} µs by schedstat |")
print(f"| warm invocation, wall clock here (emulator + curl + function on {ncpu} shared vCPUs) | {wall_us / runs / 1e3:.2f} ms |")
print(f"| peak RSS (VmHWM) at the end | {hwm_kb / 1024:.1f} MiB |")
print(f"| measured on | {arch}, {ncpu} vCPU {cpu_model} |")
print()
print("| memory (arm64) | CPU share | est. duration per warm issuance | billed | cost per million issuances (requests + compute) | cold start CPU-bound part, est. |")
print("|---:|---:|---:|---:|---:|---:|")
for mb in (128, 256):
    scale = FULL_MB / mb
    dur_ms = warm_us * scale / 1e3
    billed = max(1, math.ceil(dur_ms))
    compute = billed / 1e3 * mb / 1024 * GB_S * 1e6
    requests = PER_REQ * 1e6
    print(f"| {mb} MB | {mb / FULL_MB:.1%} of a vCPU | {dur_ms:.2f} ms | {billed} ms | **${requests + compute:.4f}** (${requests:.2f} + ${compute:.4f}) | {cold_ns / 1e6 * scale:.0f} ms |")
print()
print("Assumptions: CPU in proportion to memory (1,769 MB = 1 vCPU), so duration ≈ CPU time × 1769 / memory MB"
      " for this single-threaded CPU-bound handler (time waiting on the runtime API not counted);"
      f" the {arch} core measured here about as fast per core as a Graviton core;"
      " duration billed rounded up to the next 1 ms; arm64 list prices in us-east-1:"
      " $0.0000133334 per GB-second and $0.20 per million requests."
      " The cold start estimate scales the CPU time only; waiting on SSM (GetParameters) comes on top."
      " CPU time counts only what the function's process ran, so it holds on a loaded machine.")
EOF
