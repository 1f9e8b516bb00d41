#!/usr/bin/env bash
# Install what Facility Gateway needs on a fresh Debian/Ubuntu machine, idempotently.
#   bash scripts/setup.sh service   what the service and the demo need (scripts/demo.sh):
#                                   Mosquitto and its clients, a .venv with the project
#   bash scripts/setup.sh [test]    the test bed on top (scripts/test.sh, scripts/bench.sh; the
#                                   default, for development): the tools and servers the tests
#                                   drive, a browser and a CJK font for the console's tests, and
#                                   the project's test extras
# Add a package to the one list it belongs to; each entry is "command-or-path package".
# `--list` after the mode prints what the mode installs (apt packages, pip target) and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-test}
case "$mode" in
  service | test) ;;
  *) echo "usage: bash scripts/setup.sh [service|test]" >&2; exit 2 ;;
esac

service_packages=(
  "mosquitto mosquitto"                # the demo's private broker
  "mosquitto_sub mosquitto-clients"    # watching topics by hand, as the demo's banner shows
)
testbed_packages=(
  "socat socat"                                          # RTU tests: a serial pair without hardware
  "mbpoll mbpoll"                                        # an independent Modbus client
  "victoria-metrics victoria-metrics"                    # stands in for InfluxDB (v2 write API)
  "chromium chromium"                                    # the console's browser tests
  "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc fonts-wqy-zenhei"  # zh-CN in screenshots
  "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc fonts-noto-cjk"  # a real CJK bold
)

wanted=("${service_packages[@]}")
[ "$mode" = test ] && wanted+=("${testbed_packages[@]}")
target="."
[ "$mode" = test ] && target=".[test]"
if [ "${2:-}" = "--list" ]; then
  echo "apt: ${wanted[*]##* }"
  echo "pip: -e $target"
  exit 0
fi

need=()
for entry in "${wanted[@]}"; do
  probe=${entry%% *}
  package=${entry##* }
  if [[ $probe == /* ]]; then
    [ -e "$probe" ] || need+=("$package")
  else
    command -v "$probe" >/dev/null 2>&1 || [ -x "/usr/sbin/$probe" ] || [ -x "/usr/bin/$probe" ] \
      || need+=("$package")
  fi
done
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ] && ! "$python" -c "import ensurepip" >/dev/null 2>&1; then
  need+=(python3-venv)  # Debian splits venv's pip bootstrap out of python3
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$target" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import gateway, drivers, rules, simulators" \
  || { echo "setup: the project did not install"; exit 1; }
# an editable install leaves the project's own modules uncompiled; where PYTHONDONTWRITEBYTECODE
# is set they would be compiled again on every start (~70 ms before the first poll)
.venv/bin/python -m compileall -q gateway drivers rules simulators >/dev/null || true
echo "setup: ready (.venv, $mode)"
