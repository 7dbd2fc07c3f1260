#!/usr/bin/env bash
# Makes sure the programs the tests start are installed: redis-server (every
# test that talks to Redis), redis-sentinel (the Sentinel topology of
# internal/redistest) and chromium (the console's browser tests). Debian's
# packages. As root it installs what is missing with apt-get; otherwise it
# names the one command to run and fails, so that `make test` never runs
# half the tests and calls it a pass.
#
#   bash scripts/test-tools.sh          # make test runs this first
set -euo pipefail

# program -> the Debian package that has it
declare -A package_of=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [redis-sentinel]=redis-sentinel
  [chromium]=chromium
)

missing=()
for program in redis-server redis-cli redis-sentinel chromium; do
  command -v "$program" >/dev/null 2>&1 || missing+=("${package_of[$program]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

# De-duplicated, in order.
packages="$(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++' | tr '\n' ' ')"
packages="${packages% }"
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need programs this machine lacks. Install them, then run make test again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y $packages" >&2
  exit 1
fi
echo "installing what the tests need: $packages"
apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $packages >/dev/null
