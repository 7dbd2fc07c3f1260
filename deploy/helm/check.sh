#!/usr/bin/env bash
# Renders and lints the Helm chart deploy/helm/wacampaign; fails on any error.
#
#   bash deploy/helm/check.sh
#
# Five sets of values: the chart's defaults; testdata/all-on.yaml (KEDA on
# Prometheus down to 0, the replica cap from the accounts, Ingress,
# ServiceMonitor, NetworkPolicies, every secret as a plain value, message
# templates); testdata/existing-secrets.yaml (HPA, every secret from an
# existing Secret); testdata/keda-sentinel.yaml and keda-cluster.yaml (KEDA's
# redis scalers on Sentinel and Cluster). Each is linted (helm lint --strict)
# and rendered (helm template), and the
# rendering is checked offline by kubecheck/ (strict decoding into the
# Kubernetes API types: kubeconform would need to download its schemas, and
# this machine has no network but the package registries). Then a few
# settings the chart must refuse are tried, and must fail.
#
# Needs only Go: helm is built from the Go module proxy, once, into
# ${XDG_CACHE_HOME:-~/.cache}/wacampaign-tools/. On this 2-core machine the
# first run took 3 min 40 s with empty Go caches (nearly all of it
# downloading and compiling helm; 2.5 min when Go's build cache is warm);
# later runs take under 2 seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
chart="$here/wacampaign"

HELM_VERSION=v3.21.4
tools="${XDG_CACHE_HOME:-$HOME/.cache}/wacampaign-tools"
helm="$tools/helm-$HELM_VERSION/helm"
if [ ! -x "$helm" ]; then
  echo "building helm $HELM_VERSION into $tools (once; a few minutes)"
  # From a temporary folder, so no go.mod (the product's included) is read or touched.
  tmp="$(mktemp -d)"
  (cd "$tmp" && GOFLAGS=-mod=mod GOBIN="$tools/helm-$HELM_VERSION" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  rm -rf "$tmp"
fi

# kubecheck is a module of its own (deploy/helm/kubecheck/go.mod).
kubecheck() { (cd "$here/kubecheck" && GOFLAGS= go run . "$@"); }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# render NAME [helm args...]: lint, render to $out/NAME.yaml, validate.
render() {
  local name="$1"; shift
  echo "== $name"
  "$helm" lint --strict "$chart" "$@" >"$out/$name.lint" 2>&1 || { cat "$out/$name.lint"; fail "$name: helm lint"; }
  "$helm" template wacampaign "$chart" --namespace campaigns "$@" >"$out/$name.yaml" || fail "$name: helm template"
}
has() { grep -q -- "$2" "$out/$1.yaml" || fail "$1: expected '$2' in the rendering"; }
hasnt() { ! grep -q -- "$2" "$out/$1.yaml" || fail "$1: did not expect '$2' in the rendering"; }

render defaults
kubecheck -expect Deployment/wacampaign-api -expect Deployment/wacampaign-worker \
  -expect Service/wacampaign-api -expect ConfigMap/wacampaign -expect Secret/wacampaign \
  -expect PodDisruptionBudget/wacampaign-api -expect PodDisruptionBudget/wacampaign-worker \
  <"$out/defaults.yaml"
has defaults 'value: "0.0.0.0:8080"'
has defaults 'path: /healthz'
has defaults 'readOnlyRootFilesystem: true'
has defaults 'mountPath: /tmp'
hasnt defaults 'kind: ScaledObject'
hasnt defaults 'kind: HorizontalPodAutoscaler'
hasnt defaults 'API_KEYS:'               # no key in the chart's Secret unless given
hasnt defaults 'TIMELINES_API_TOKEN:'
hasnt defaults 'WEBHOOK_SECRET'

render all-on -f "$here/testdata/all-on.yaml"
kubecheck -expect ScaledObject/wacampaign-worker -expect Secret/wacampaign -expect ConfigMap/wacampaign-templates \
  -expect Ingress/wacampaign -expect ServiceMonitor/wacampaign -expect Service/wacampaign-worker-metrics \
  -expect NetworkPolicy/wacampaign-api -expect NetworkPolicy/wacampaign-worker <"$out/all-on.yaml"
has all-on 'API_KEYS: '
has all-on 'TIMELINES_API_TOKEN: '
has all-on 'WEBHOOK_SECRET: '
has all-on 'TEMPLATES_DIR: /etc/wacampaign/templates'
has all-on 'Hi {{ .name }}, welcome aboard!'   # templates are not run through Helm
has all-on 'reminder.tmpl:'
has all-on 'value: "50"'                       # WORKER_CONCURRENCY
hasnt all-on 'kind: HorizontalPodAutoscaler'
hasnt all-on 'kind: TriggerAuthentication'     # Prometheus's is the operator's own
# KEDA: work that is due, and a second trigger that holds one worker while
# anything is due within the cooldown, so 0 replicas is safe.
has all-on 'minReplicaCount: 0'
has all-on 'maxReplicaCount: 6'                # ceil(300 / 3s / 30) + 2
has all-on 'type: prometheus'
has all-on 'query: "max(wacampaign_tasks_due{namespace=\\"campaigns\\"})"'
has all-on 'query: "max(wacampaign_tasks_due_within_cooldown{namespace=\\"campaigns\\"})"'
has all-on 'threshold: "80"'
has all-on 'name: prometheus-auth'
has all-on 'name: SCALE_COOLDOWN'
has all-on 'value: "600s"'
hasnt all-on 'listName'
# Ingress: console, API and webhooks, with TLS.
has all-on 'ingressClassName: nginx'
has all-on 'host: "campaigns.example.com"'
has all-on 'secretName: campaigns-tls'
has all-on 'path: /v1/webhooks/timelines'
has all-on 'nginx.ingress.kubernetes.io/proxy-body-size: 256m'
# Probes on both; worker health on DEBUG_ADDR, metrics on METRICS_ADDR.
has all-on 'port: health'
has all-on 'value: "0.0.0.0:8081"'
has all-on 'value: "0.0.0.0:9090"'
has all-on 'release: prometheus'
has all-on 'kubernetes.io/metadata.name: ingress-nginx'
has all-on 'cidr: 0.0.0.0/0'
has all-on 'port: 26379'

render existing-secrets -f "$here/testdata/existing-secrets.yaml"
kubecheck -expect HorizontalPodAutoscaler/wacampaign-worker <"$out/existing-secrets.yaml"
hasnt existing-secrets 'kind: Secret'           # the chart makes no Secret
has existing-secrets 'name: wacampaign-redis'
has existing-secrets 'name: wacampaign-api-keys'
has existing-secrets 'name: wacampaign-timelines'
has existing-secrets 'name: wacampaign-webhook'
hasnt existing-secrets 'kind: ScaledObject'
# With autoscaling on, the worker Deployment leaves replicas to the autoscaler.
[ "$(grep -c '^  replicas:' "$out/existing-secrets.yaml")" = 1 ] || fail "existing-secrets: worker Deployment still sets replicas"

render keda-sentinel -f "$here/testdata/keda-sentinel.yaml"
kubecheck -expect ScaledObject/wacampaign-worker -expect TriggerAuthentication/wacampaign-worker \
  -expect Ingress/wacampaign <"$out/keda-sentinel.yaml"
has keda-sentinel 'type: redis-sentinel'
has keda-sentinel 'addresses: "sentinel-0.redis:26379,sentinel-1.redis:26379,sentinel-2.redis:26379"'
has keda-sentinel 'sentinelMaster: "mymaster"'
has keda-sentinel 'listName: "asynq:{send}:pending"'
has keda-sentinel 'parameter: sentinelPassword'
has keda-sentinel 'value: "sentinel"'         # REDIS_MODE
has keda-sentinel 'path: /v1/webhooks/timelines'
hasnt keda-sentinel 'path: /$'
hasnt keda-sentinel 'path: /v1$'

render keda-cluster -f "$here/testdata/keda-cluster.yaml"
kubecheck -expect ScaledObject/wacampaign-worker <"$out/keda-cluster.yaml"
has keda-cluster 'type: redis-cluster'
has keda-cluster 'addresses: "redis-0.redis:6379,redis-1.redis:6379,redis-2.redis:6379"'
hasnt keda-cluster 'databaseIndex'            # a cluster has only database 0
hasnt keda-cluster 'kind: TriggerAuthentication'
hasnt keda-cluster 'name: DEBUG_ADDR'
hasnt keda-cluster 'port: health'
[ "$(grep -c 'readinessProbe:' "$out/keda-cluster.yaml")" = 1 ] || fail "keda-cluster: the worker has probes without a health port"

# refuse NAME MESSAGE [helm args...]: the chart must fail, saying MESSAGE.
refuse() {
  local name="$1" message="$2"; shift 2
  echo "== refuses: $name"
  if "$helm" template wacampaign "$chart" "$@" >/dev/null 2>"$out/err"; then
    fail "$name: rendered, but the chart should refuse it"
  fi
  grep -q -- "$message" "$out/err" || { cat "$out/err"; fail "$name: refused without saying '$message'"; }
}
refuse "keda and hpa together" "enable keda or hpa, not both" \
  --set autoscaling.keda.enabled=true --set autoscaling.hpa.enabled=true
refuse "a secret in config" "config.API_KEYS: this is a secret" --set config.API_KEYS=k
refuse "grace period under SHUTDOWN_TIMEOUT" "worker.terminationGracePeriodSeconds (30) must be above" \
  --set config.SHUTDOWN_TIMEOUT=1m --set api.terminationGracePeriodSeconds=90 --set worker.terminationGracePeriodSeconds=30
refuse "hpa from zero" "a plain HPA cannot scale to 0" \
  --set autoscaling.hpa.enabled=true --set autoscaling.minReplicas=0
# The stall of the issue: KEDA at 0 replicas, watching a list only a worker fills.
refuse "keda's redis trigger from zero" "only a running worker moves scheduled sends" \
  --set autoscaling.keda.enabled=true --set autoscaling.keda.trigger=redis --set autoscaling.minReplicas=0
refuse "prometheus from zero without the cooldown metric" "needs autoscaling.keda.prometheus.scaleToZero: true" \
  --set autoscaling.keda.enabled=true --set autoscaling.minReplicas=0
refuse "an unknown trigger" 'autoscaling.keda.trigger: "cpu" is not prometheus or redis' \
  --set autoscaling.keda.enabled=true --set autoscaling.keda.trigger=cpu
refuse "an unknown redis mode" 'redis.mode: "replicated" is not standalone, sentinel or cluster' --set redis.mode=replicated
refuse "sentinel without the master's name" "autoscaling.keda.redis.sentinelMaster" \
  --set autoscaling.keda.enabled=true --set autoscaling.keda.trigger=redis --set redis.mode=sentinel
refuse "a capacity without a usable SEND_INTERVAL" "needs config.SEND_INTERVAL above 0" \
  --set autoscaling.capacity.accounts=10 --set config.SEND_INTERVAL=0s --set autoscaling.hpa.enabled=true
refuse "an Ingress path the chart does not know" 'ingress.paths: "admin" is not console, api or webhooks' \
  --set ingress.enabled=true --set 'ingress.paths={admin}'

echo "helm chart: all checks passed"
