#!/bin/sh
# The demo: the whole bic2mqtt stack on a simulated BIC-2200 and a replayed household day.
#
#   sh tools/demo.sh [BUILD_DIR]        (what `make demo` runs after building)
#
# Starts, all from one generated ini in a temporary directory: a private mosquitto on a free
# loopback port, bic-sim (one BIC-2200-24 in battery mode on a 24 V LiFePO4 pack, replaying
# data/profiles/p1_clear_march.csv time-compressed and publishing the smart meter's reading),
# bic-can-gateway on the simulator's slcan pty, a commissioning pass with bicctl,
# bic-mqtt-bridge and bic-charge-ctl. tools/demo_view.py then shows a live one-screen view and
# a summary at the end. Ctrl-C stops it; nothing is left running and the temporary directory
# is removed, also when this script is killed (the programs get SIGTERM when it dies).
#
# Settings (environment):
#   DEMO_SECONDS=N   stop after N seconds (default: one simulated day)
#   DEMO_SPEED=N     time compression 10-3600 (default 360: a day in 4 minutes)
#   DEMO_START_H=H   hour of the day the replay starts at, 0-23 (default 0)
#   DEMO_KEEP=1      keep the temporary directory (ini and logs) for a look afterwards
# Without a terminal on stdout the view prints plain lines instead of redrawing the screen.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-build}
case "$build" in /*) ;; *) build="$src/$build" ;; esac

die() {
    echo "demo: $*" >&2
    exit 2
}

# ---- settings, validated before anything starts
is_uint() {
    case "$1" in '' | *[!0-9]*) return 1 ;; esac
    [ ${#1} -le 6 ]
}
seconds=${DEMO_SECONDS:-}
speed=${DEMO_SPEED:-360}
start_h=${DEMO_START_H:-0}
if [ -n "$seconds" ]; then
    is_uint "$seconds" && [ "$seconds" -ge 10 ] && [ "$seconds" -le 86400 ] ||
        die "DEMO_SECONDS='$seconds' is not a whole number of seconds; allowed: 10-86400"
fi
is_uint "$speed" && [ "$speed" -ge 10 ] && [ "$speed" -le 3600 ] ||
    die "DEMO_SPEED='$speed' is not allowed; allowed: a whole number 10-3600"
is_uint "$start_h" && [ "$start_h" -le 23 ] ||
    die "DEMO_START_H='$start_h' is not an hour; allowed: 0-23"

# ---- what the demo needs
sim="$build/sim/bic-sim"
gw="$build/can-gateway/bic-can-gateway"
bicctl="$build/can-gateway/bicctl"
bridge="$build/mqtt-bridge/bic-mqtt-bridge"
ctl="$build/charge-ctl/bic-charge-ctl"
for p in "$sim" "$gw" "$bicctl" "$bridge" "$ctl"; do
    [ -x "$p" ] || die "$p is missing; build first: make build (or make demo)"
done
mosquitto=$(command -v mosquitto || true)
[ -n "$mosquitto" ] || mosquitto=/usr/sbin/mosquitto
[ -x "$mosquitto" ] || die "mosquitto is not installed; run as root: apt-get install -y mosquitto"
command -v setpriv >/dev/null || die "setpriv is missing (Debian package util-linux)"
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 || true)
[ -n "$python" ] || die "python3 is missing; run as root: apt-get install -y python3"
"$python" -c 'import zmq, paho.mqtt.client' 2>/dev/null ||
    die "python3-zmq and python3-paho-mqtt are needed; run as root: apt-get install -y python3-zmq python3-paho-mqtt"
profile="$src/data/profiles/p1_clear_march.csv"
[ -r "$profile" ] || die "$profile is missing"

# ---- cleanup: every program runs in a process group of its own; stop them newest first
tmp=""
pids=""
view_pid=""
cleaned=""
# running PID: the process exists and is not a zombie (this shell reaps its children late).
running() {
    [ -r "/proc/$1/stat" ] || return 1
    case "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" in Z* | "") return 1 ;; esac
}
cleanup() {
    [ -n "$cleaned" ] && return 0
    cleaned=1
    trap '' INT TERM HUP
    if [ -n "$view_pid" ]; then
        kill -TERM "$view_pid" 2>/dev/null || true
    fi
    # Newest first, each given up to 5 s for a clean exit (the controller releases its
    # lease while the gateway still answers), then SIGKILL for its whole process group.
    for pid in $pids; do
        kill -TERM "-$pid" 2>/dev/null || true
        n=0
        while [ $n -lt 50 ] && running "$pid"; do
            sleep 0.1
            n=$((n + 1))
        done
        kill -KILL "-$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -n "$tmp" ] && [ -d "$tmp" ]; then
        if [ "${DEMO_KEEP:-0}" = 1 ]; then
            echo "demo: kept $tmp (ini and logs)"
        else
            rm -rf "$tmp"
        fi
    fi
}
interrupted() {
    # Ctrl-C reaches the view as well: it prints the summary and ends; wait for that.
    if [ -n "$view_pid" ]; then
        wait "$view_pid" 2>/dev/null || true
        view_pid=""
    fi
    exit 130
}
trap cleanup EXIT
trap interrupted INT
trap 'exit 143' TERM
trap 'exit 129' HUP

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bic2mqtt-demo.XXXXXX")

# start NAME PROGRAM ARGS...: runs PROGRAM in its own session (Ctrl-C goes to the view, the
# programs are stopped in order by cleanup), with SIGTERM if this script dies, and its output
# in $tmp/NAME.log.
start() {
    name=$1
    shift
    setsid setpriv --pdeathsig TERM -- "$@" >"$tmp/$name.log" 2>&1 </dev/null &
    pids="$! $pids"
    eval "pid_$(echo "$name" | tr -c 'a-z0-9\n' '_')=$!"
}

# fail WHAT LOG: the step that failed and the end of the program's log.
fail() {
    echo "demo: $1" >&2
    if [ -n "${2:-}" ] && [ -s "$tmp/$2.log" ]; then
        echo "---- last lines of $2's log ----" >&2
        tail -n 20 "$tmp/$2.log" >&2
    fi
    exit 1
}

# wait_until SECONDS WHAT LOG PID COMMAND...: polls COMMAND every 0.2 s until it succeeds,
# the program with PID exits, or SECONDS pass.
wait_until() {
    limit=$(($1 * 5))
    what=$2
    log=$3
    pid=$4
    shift 4
    n=0
    until "$@" >/dev/null 2>&1; do
        running "$pid" || fail "$log exited while waiting for $what" "$log"
        n=$((n + 1))
        [ $n -lt $limit ] || fail "timed out waiting for $what" "$log"
        sleep 0.2
    done
}

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
topic=haus/power/bat/bic2mqtt
meter=haus/power/grid/power
ini="$tmp/bic2mqtt.ini"

# ---- the configuration: the sample's defaults except for what a demo on a simulator needs
cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
EOF
cat >"$ini" <<EOF
; bic2mqtt demo: generated by tools/demo.sh for one run (see deploy/bic2mqtt.ini for every key)
[ALL]
TraceLevel = info

[MQTT]
BrokerIpAdr = 127.0.0.1
BrokerPort = $port
TopicMain = $topic
KeepAliveSec = 10
PublishPeriodSec = 5

[GATEWAY]
; the simulator's slcan pty instead of a USB adapter
Can = slcan:$tmp/can0
ReqEndpoint = ipc://$tmp/gateway.sock
PubEndpoint = ipc://$tmp/telemetry.sock
StateDir = $tmp
TelemetryPeriodMs = 500

[DEVICE]
; one BIC-2200-24 on an 8-cell (24 V) LiFePO4 battery of 280 Ah
Id/0/Type = BIC2200-24CAN
Id/0/ChargeVoltage = 2800
Id/0/DischargeVoltage = 2400
Id/0/MaxChargeCurrent = 7500
Id/0/MaxDischargeCurrent = 6000

[BAT_0]
Cap2V/0 = 20.00
Cap2V/2 = 23.20
Cap2V/5 = 24.40
Cap2V/10 = 25.44
Cap2V/20 = 25.92
Cap2V/30 = 26.16
Cap2V/40 = 26.32
Cap2V/50 = 26.40
Cap2V/60 = 26.48
Cap2V/70 = 26.56
Cap2V/80 = 26.64
Cap2V/90 = 26.72
Cap2V/95 = 26.88
Cap2V/98 = 27.20
Cap2V/100 = 28.00

[CHARGE_CONTROL]
Id/0/Type = PID
Id/0/Enable = 1
Id/0/TopicPower = $meter
Id/0/MeterTimeoutSec = 5
Id/0/LeaseTtlSec = 5
Id/0/ChargeTol = 20
; The controller's timers run in real time while the household runs $speed times faster:
; shorter dwell and block times keep its pace in proportion to the compressed day.
Id/0/DischargeBlockTimeSec = 0
Id/0/DirectionDwellSec = 2
Id/0/IdleDwellSec = 1
EOF

echo "demo: starting in $tmp (broker 127.0.0.1:$port, speed ${speed}x)"
start mosquitto "$mosquitto" -c "$tmp/mosquitto.conf"
wait_until 10 "mosquitto on port $port" mosquitto "$pid_mosquitto" \
    mosquitto_pub -h 127.0.0.1 -p "$port" -t demo/probe -n

start bic-sim "$sim" --slcan-pty "$tmp/can0" --control "ipc://$tmp/sim.ctl" \
    --device 0:24:battery,canctrl,remote_off,soc=50 --household "$profile" --speed "$speed" \
    --start-s $((start_h * 3600)) --mqtt "127.0.0.1:$port" --meter-topic "$meter" \
    --meter-period-ms 500
wait_until 10 "the simulator's pty" bic-sim "$pid_bic_sim" test -e "$tmp/can0"

start bic-can-gateway "$gw" -c "$ini"
wait_until 20 "the gateway to see device 0" bic-can-gateway "$pid_bic_can_gateway" \
    sh -c "'$bicctl' -c '$ini' devices | grep -q online"

# Commissioning as the README describes it, shortened: the simulated unit is already in
# battery mode under CAN control, so no power cycle is needed. Its Remote ON/OFF contact is
# open (no output) until the set-points are in place: EEPROM writes off, end voltages, low
# currents until the controller takes over.
echo "demo: commissioning: bicctl init_mode; cvset 2800; dvset 2400; ccset 500; dcset 500"
for step in init_mode "cvset 2800" "dvset 2400" "ccset 500" "dcset 500"; do
    rc=0
    # shellcheck disable=SC2086
    "$bicctl" -c "$ini" $step >>"$tmp/commissioning.log" 2>&1 || rc=$?
    # exit 5: the device already held the value (the gateway brings the [DEVICE] values on)
    [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || fail "commissioning failed at bicctl $step" commissioning
done
"$python" - "ipc://$tmp/sim.ctl" >>"$tmp/commissioning.log" 2>&1 <<'EOF' ||
import json, sys, zmq
s = zmq.Context.instance().socket(zmq.REQ)
s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1])
s.send(json.dumps({"cmd": "remote", "on": True}).encode())
if not s.poll(5000) or not json.loads(s.recv()).get("ok"):
    sys.exit("bic-sim did not close the Remote ON/OFF contact")
EOF
    fail "could not close the simulated Remote ON/OFF contact" commissioning
echo "demo: Remote ON/OFF closed; starting the bridge and the charge controller"

start bic-mqtt-bridge "$bridge" -c "$ini"
start bic-charge-ctl "$ctl" -c "$ini"

view_args="--broker 127.0.0.1:$port --topic $topic --meter-topic $meter --sim ipc://$tmp/sim.ctl"
view_args="$view_args --speed $speed --logs $tmp --remove-if-orphaned $tmp"
[ -n "$seconds" ] && view_args="$view_args --seconds $seconds"
for pid in $pids; do
    view_args="$view_args --watch-pid $pid"
done
# The view runs in the background so that a signal to this script is handled at once; it
# handles Ctrl-C itself (summary, then exit).
# shellcheck disable=SC2086
setpriv --pdeathsig TERM -- "$python" "$here/demo_view.py" $view_args &
view_pid=$!
status=0
wait "$view_pid" || status=$?
view_pid=""
exit $status
