#!/usr/bin/env bash
# Renders and lints the Helm chart deploy/helm/wacampaign; fails on any error.
#
#   bash deploy/helm/check.sh
#
# Three sets of values: the chart's defaults; testdata/all-on.yaml (KEDA,
# every secret as a plain value, message templates); and
# testdata/existing-secrets.yaml (HPA, every secret from an existing Secret).
# Each is linted (helm lint --strict) and rendered (helm template), and the
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
kubecheck -expect ScaledObject/wacampaign-worker -expect TriggerAuthentication/wacampaign-worker \
  -expect Secret/wacampaign -expect ConfigMap/wacampaign-templates <"$out/all-on.yaml"
has all-on 'listName: "asynq:{send}:pending"'
has all-on 'maxReplicaCount: 6'
has all-on 'API_KEYS: '
has all-on 'TIMELINES_API_TOKEN: '
has all-on 'WEBHOOK_SECRET: '
has all-on 'TEMPLATES_DIR: /etc/wacampaign/templates'
has all-on 'Hi {{ .name }}, welcome aboard!'   # templates are not run through Helm
has all-on 'reminder.tmpl:'
has all-on 'value: "50"'                       # WORKER_CONCURRENCY
hasnt all-on 'kind: HorizontalPodAutoscaler'

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

echo "helm chart: all checks passed"
