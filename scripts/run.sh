#!/usr/bin/env bash
# make run: the whole product on this machine in one process (campaign-api
# -worker) with the sandbox provider, for trying it out. It touches nothing
# of anyone else's: with REDIS_URL unset it runs a redis-server of its own
# on a free port, its data in .data/<port of ADDR>/ (ignored by git), or an
# embedded Redis when redis-server is missing. The API key is kept beside
# the data, so it stays the same across restarts. Ctrl-C stops it cleanly.
#
#   ADDR=127.0.0.1:8081 bash scripts/run.sh    # make run ADDR=127.0.0.1:8081
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
ADDR="${ADDR:-127.0.0.1:8080}"
host="${ADDR%:*}"
port="${ADDR##*:}"
case "$port" in
  ''|*[!0-9]*) echo "ADDR=$ADDR: write it as host:port, e.g. make run ADDR=127.0.0.1:8081" >&2; exit 2 ;;
esac

# Before anything starts: is the address taken? (campaign-api checks again
# when it listens; this answers before a compile.)
probe="$host"
[ -z "$probe" ] || [ "$probe" = "0.0.0.0" ] && probe=127.0.0.1
if (exec 3<>"/dev/tcp/$probe/$port") 2>/dev/null; then
  echo "ADDR $ADDR is taken (another make run?). Pick another address, e.g.:" >&2
  echo "  make run ADDR=${host:-127.0.0.1}:$((port + 1))" >&2
  echo "Each address keeps its campaigns in a data folder of its own (.data/<port>)." >&2
  exit 1
fi

# One data folder per port: a second make run on another address gets its
# own Redis data and key, and cannot touch the first's (campaign-api also
# holds a lock file there while it runs).
data="${DATA:-.data/$port}"
mkdir -p "$data"
if [ -z "${API_KEYS:-}" ]; then
  keyfile="$data/api-key"
  if [ ! -s "$keyfile" ]; then
    (umask 077 && echo "dev-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$keyfile")
  fi
  API_KEYS="$(cat "$keyfile")"
fi
key="${API_KEYS%%,*}"

if [ -n "${REDIS_URL:-}" ]; then
  redis_line="REDIS_URL (yours)"
elif command -v redis-server >/dev/null 2>&1; then
  redis_line="its own redis-server, data in $data/ (kept across restarts)"
else
  redis_line="EMBEDDED, nothing is kept (install redis-server to keep campaigns: apt-get install redis-server)"
fi
# The provider is chosen out loud: the sandbox unless one is configured.
if [ -z "${PROVIDER:-}" ] && [ -z "${TIMELINES_API_TOKEN:-}${GATEWAY_BASE_URL:-}${GATEWAY_ACCOUNTS:-}" ]; then
  export PROVIDER=sandbox
fi
sandbox_line=""
if [ "${PROVIDER:-}" = sandbox ]; then
  # The sandbox keeps what it was sent beside the data, so the statuses of
  # messages sent before a restart still arrive; and it posts its webhooks
  # to this process's receiver, under a secret kept there too (never
  # printed), so the webhook path runs end to end.
  export SANDBOX_STATE_FILE="${SANDBOX_STATE_FILE:-$data/sandbox-state.json}"
  secret_where="WEBHOOK_SECRET (yours)"
  if [ -z "${WEBHOOK_SECRET:-}" ]; then
    secretfile="$data/webhook-secret"
    if [ ! -s "$secretfile" ]; then
      (umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secretfile")
    fi
    WEBHOOK_SECRET="$(cat "$secretfile")"
    export WEBHOOK_SECRET
    secret_where="the secret in $secretfile"
  fi
  sandbox_line="  Sandbox    keeps its state in $SANDBOX_STATE_FILE; posts webhooks to http://$ADDR/v1/webhooks/timelines/ with $secret_where
"
fi

cat <<BANNER

  Console    http://$ADDR/
  API        http://$ADDR/v1/
  API key    $key
  Redis      $redis_line
  Provider   ${PROVIDER:-chosen from TIMELINES_API_TOKEN / GATEWAY_*}
${sandbox_line}  Try it:    curl -s -H 'Authorization: Bearer $key' -F template_name=welcome -F contacts=@examples/contacts.csv http://$ADDR/v1/campaigns
  Progress:  curl -s -H 'Authorization: Bearer $key' http://$ADDR/v1/campaigns
  Stop:      Ctrl-C

BANNER
export API_KEYS ADDR LOG_FORMAT="${LOG_FORMAT:-console}"
# Built, then run in place of this shell (not go run, which exits 1 after a
# Ctrl-C whatever its program did): the terminal's Ctrl-C reaches
# campaign-api, which stops the worker, then its redis-server, and exits 0,
# and make reports no error.
"$GO" build -o "$data/campaign-api" ./cmd/campaign-api
exec "$data/campaign-api" -worker -data "$data"
