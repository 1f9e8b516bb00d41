#!/usr/bin/env bash
# The demo, from a fresh clone: installs what it needs, then runs simulators + gateway on the
# bundled example site with a private Mosquitto. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fgw demo "$@"
