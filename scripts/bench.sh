#!/usr/bin/env bash
# The benchmark suite, from a fresh clone: installs what it needs (scripts/setup.sh), then runs every
# bench in bench/ with its defaults and prints each figure beside its ceiling from the same run.
#   ./scripts/bench.sh            full suite (about 85 minutes: the footprint of the default site runs 10,
#                                 the comparison with ThingsBoard IoT Gateway about 60)
#   ./scripts/bench.sh --quick    every bench in a short configuration (about 7 minutes, 5 of them
#                                 bench.peers, which installs the peer into .bench/peer-venv once)
# Figures are noisy on a shared machine: each bench prints the 1-minute load average with them.
# Never run by CI; see docs/performance.md for the figures and how they were taken.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
py=.venv/bin/python
export PATH="$PWD/.venv/bin:$PATH"

if [ "${1:-}" = "--quick" ]; then
  $py -m bench.rules --seconds 1 --repeat 1
  $py -m bench.poll --seconds 1 --repeat 1
  $py -m bench.ingest --messages 5000 --repeat 1
  $py -m bench.latency --seconds 5 --rounds 5
  $py -m bench.export --polls 10000 --repeat 1
  $py -m bench.footprint --devices 200 --seconds 20 --settle 5
  $py -m bench.fire_latency --rounds 3
  $py -m bench.baseload --meters 1 --repeat 1
  $py -m bench.wire --units 4 --seconds 2 --repeat 1 --warmup 1 --bauds 19200
  $py -m bench.peers --quick                          # beside ThingsBoard IoT Gateway (installs it)
else
  uptime
  $py -m bench.rules
  $py -m bench.poll
  $py -m bench.ingest
  $py -m bench.latency
  $py -m bench.export
  $py -m bench.fire_latency
  $py -m bench.baseload                               # the nightly baseload judgement, 1 and 4 meters
  $py -m bench.wire                                   # serial lines and converters, about 10 minutes
  $py -m bench.footprint --readings off               # the default site, 10 minutes
  $py -m bench.footprint --readings on --seconds 60   # readings published: start to first poll
  $py -m bench.peers                                  # beside ThingsBoard IoT Gateway, about an hour
fi
