#!/usr/bin/env bash
# Runs each native fuzz target for a while (make fuzz). Usage:
#   scripts/fuzz.sh <go> <fuzztime> <pkg:FuzzName>...
# A target fails on what it finds: a failing input (written to
# testdata/fuzz), a panic, a broken assertion. Go 1.26's fuzz coordinator
# can also fail a target with a bare "context deadline exceeded" at the end
# of its -fuzztime when a worker is mid-call (golang/go#75804, fixed in Go
# 1.27): no input, nothing to reproduce. Such a run alone is tried once
# more; anything else, or the same twice, fails.
set -uo pipefail
go_cmd="$1" fuzztime="$2"
shift 2

# only_deadline_race says whether a failed run's log shows nothing but the
# coordinator's deadline race: the deadline error, and no failing input,
# panic or failed assertion (a "file_test.go:NN:" line).
only_deadline_race() {
  grep -q 'context deadline exceeded' "$1" &&
    ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$1"
}

run_target() {
  local pkg="$1" name="$2" log
  log="$(mktemp)"
  for try in 1 2; do
    echo "fuzz $name ($pkg) for $fuzztime"
    if "$go_cmd" test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s -parallel=1 "$pkg" 2>&1 | tee "$log"; then
      rm -f "$log"
      return 0
    fi
    if [ "$try" = 1 ] && only_deadline_race "$log"; then
      echo "fuzz $name: a bare 'context deadline exceeded' at the end of -fuzztime, no failing input (golang/go#75804): once more"
      continue
    fi
    rm -f "$log"
    return 1
  done
}

for t in "$@"; do
  run_target "${t%%:*}" "${t##*:}" || exit 1
done
