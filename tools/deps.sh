#!/bin/sh
# Installs the Debian packages bic2mqtt needs to build, test, package and run its demo
# (make included: ./demo and ./test run this first on a machine that has only sh).
# As root: installs what is missing. Otherwise: prints the apt-get line and fails.
set -eu
PKGS="build-essential cmake pkg-config libzmq3-dev libczmq-dev libmosquitto-dev \
libinih-dev libcjson-dev libcmocka-dev libsystemd-dev mosquitto mosquitto-clients \
python3 python3-zmq python3-paho-mqtt gnuplot-nox supervisor clang libclang-rt-14-dev \
user-mode-linux kmod systemd udev iproute2 valgrind file lintian man-db openssl clang-format"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bic2mqtt: missing Debian packages:$missing" >&2
  echo "run as root:  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
echo "bic2mqtt: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
