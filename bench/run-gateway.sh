#!/bin/sh
# Run the gateway benchmark: start bic-sim (one BIC-2200-24 on an slcan pty) and
# bic-can-gateway in a private temporary directory, run bench_gateway against them, stop
# both. Usage: bench/run-gateway.sh [BUILD_DIR] [bench_gateway options...]
# The figures are recorded in docs/benchmarks.md.
set -eu

build=${1:-build}
[ $# -gt 0 ] && shift
for prog in sim/bic-sim can-gateway/bic-can-gateway bench/bench_gateway; do
    if [ ! -x "$build/$prog" ]; then
        echo "run-gateway.sh: $build/$prog not built (cmake --build $build)" >&2
        exit 2
    fi
done

tmp=$(mktemp -d /tmp/bic-bench.XXXXXX)
sim_pid=
gw_pid=
cleanup() {
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Wait up to 10 s for a file to appear (a pty symlink, an ipc socket).
wait_for() {
    i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "run-gateway.sh: $2 did not start (no $1); its log:" >&2
            cat "$3" >&2
            exit 1
        fi
        sleep 0.1
    done
}

"$build/sim/bic-sim" --slcan-pty "$tmp/tty" --device 0:24 \
    --control "ipc://$tmp/sim.ctl" >"$tmp/sim.log" 2>&1 &
sim_pid=$!
wait_for "$tmp/tty" bic-sim "$tmp/sim.log"

mkdir "$tmp/state"
cat >"$tmp/bench.ini" <<EOF
[GATEWAY]
Can=slcan:$tmp/tty
ReqEndpoint=ipc://$tmp/gw.sock
PubEndpoint=ipc://$tmp/tel.sock
StateDir=$tmp/state
TelemetryPeriodMs=1000

[DEVICE]
Id/0/Type=BIC2200-24CAN
Id/0/ChargeVoltage=2760
Id/0/DischargeVoltage=2400
Id/0/MaxChargeCurrent=5000
Id/0/MaxDischargeCurrent=5000
EOF

"$build/can-gateway/bic-can-gateway" -c "$tmp/bench.ini" >"$tmp/gw.log" 2>&1 &
gw_pid=$!
wait_for "$tmp/gw.sock" bic-can-gateway "$tmp/gw.log"

echo "bic-sim: 1 x BIC-2200-24 on $tmp/tty; gateway pid $gw_pid; $(nproc) CPUs; $(uname -r)"
"$build/bench/bench_gateway" --endpoint "ipc://$tmp/gw.sock" --pub "ipc://$tmp/tel.sock" \
    --sim-control "ipc://$tmp/sim.ctl" --gateway-pid "$gw_pid" "$@"
