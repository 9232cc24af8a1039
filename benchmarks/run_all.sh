#!/usr/bin/env bash
# Run every benchmark, then regenerate benchmarks/RESULTS.md. Unattended; from anywhere:
#
#     benchmarks/run_all.sh [--quick]
#
# Run it on an otherwise idle machine: every JSON records the load average, and other processes
# inflate every time. Total on a 2-core machine: about 55 minutes (2026-11-30: --quick took
# 38.6 min, of which samplers 31.4, demo 3.3, sweep 2.0, forward 1.0 and MSE 0.9; then the
# 30-country run 6.0 min and scaling 10.9; first_load, added since, took 0.5 min alone).
# --quick skips the 30-country run and scaling.
# A benchmark that fails is reported and the others still run; the exit status is 1 if any did.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTENSOR_FLAGS=${PYTENSOR_FLAGS:-base_compiledir=$PWD/.pytensor_cache}
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
failed=()
step() {
    local name=$1; shift
    echo "=== $name: $* ($(date +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
    local start=$SECONDS
    if timeout 7200 "$@"; then
        echo "=== $name done in $((SECONDS - start)) s"
    else
        echo "=== $name FAILED (exit $?) after $((SECONDS - start)) s"
        failed+=("$name")
    fi
}
total=$SECONDS
step samplers "$PY" benchmarks/bench_samplers.py
step forward "$PY" benchmarks/bench_forward.py
step rng "$PY" benchmarks/bench_rng.py
step first_load "$PY" benchmarks/bench_first_load.py
step demo "$PY" benchmarks/bench_demo_and_samplers.py --repeats 2
step mse "$PY" benchmarks/bench_mse.py
step sweep "$PY" benchmarks/bench_sweep.py
if [[ $quick == 0 ]]; then
    step multicountry "$PY" benchmarks/bench_multicountry.py
    step scaling "$PY" benchmarks/bench_scaling.py
fi
step make_results "$PY" benchmarks/make_results.py
echo "=== all done in $((SECONDS - total)) s"
if ((${#failed[@]})); then
    echo "failed: ${failed[*]}"
    exit 1
fi
