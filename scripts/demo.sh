#!/usr/bin/env bash
# The demo, from a fresh clone: installs what the service needs (nothing of the test bed), then
# runs simulators + gateway on the bundled example site with a private Mosquitto. Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh service  # the service only: no browser, fonts or test tools
exec .venv/bin/fgw demo "$@"
