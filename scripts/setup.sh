#!/usr/bin/env bash
# Install what Facility Gateway needs on a fresh Debian/Ubuntu machine, idempotently:
# the system tools the tests and the demo use (Mosquitto, socat, mbpoll) and a venv with the project.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)  # browser tests
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)  # zh-CN in screenshots
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc ] || need+=(fonts-noto-cjk)  # real CJK bold
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import gateway, drivers, rules, simulators" \
  || { echo "setup: the project did not install"; exit 1; }
# an editable install leaves the project's own modules uncompiled; where PYTHONDONTWRITEBYTECODE
# is set they would be compiled again on every start (~70 ms before the first poll)
.venv/bin/python -m compileall -q gateway drivers rules simulators >/dev/null || true
echo "setup: ready (.venv)"
