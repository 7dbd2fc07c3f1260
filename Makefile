# Two commands a new user needs: `make run` and `make test` (README.md).
SHELL := /bin/bash
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ADDR ?= 127.0.0.1:8080

.PHONY: run test test-tools image lint fuzz build bench chaos chaos-short clean helm-check

## run: API + worker in one process with the sandbox provider; its own redis-server (data in .data/<port>) unless REDIS_URL is set
run:
	@ADDR="$(ADDR)" GO="$(GO)" bash scripts/run.sh

## test: every test, against throwaway redis-server processes the tests start themselves
# One package at a time (-p 1): the end-to-end tests read pacing off the
# sandbox's receive times, and on a two-core machine a second race-built test
# binary running beside them stalls requests by a hundred milliseconds and more.
test: test-tools
	$(GO) test -race -count=1 -p 1 -timeout 45m ./...

## test-tools: install what the tests start (redis-server, redis-sentinel, chromium) when missing: apt-get as root, else the command to run
test-tools:
	@bash scripts/test-tools.sh

## lint: what CI refuses: unformatted code, an untidy go.mod, vet and staticcheck findings
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## helm-check: the chart renders, lints and validates (builds helm from the Go module proxy once)
helm-check:
	bash deploy/helm/check.sh

## bench: the benchmark figures beside bare-asynq baselines, on a throwaway redis-server (BENCH_ROWS=100000 BENCH_INGEST_RUNS=1 for a quicker run)
BENCH_ROWS ?= 1000000
BENCH_SENDS ?= 20000
bench:
	GO="$(GO)" $(GO) run ./cmd/campaign-bench -rows $(BENCH_ROWS) -sends $(BENCH_SENDS)

## chaos: the delivery promise under kill -9 of workers and of Redis and 20 % provider faults: nobody twice, nobody lost (CHAOS_SIZE=short: the CI version)
chaos:
	GO="$(GO)" $(GO) run ./cmd/campaign-chaos

## chaos-short: the same with a few hundred recipients a scenario, under three minutes; CI runs it
chaos-short:
	GO="$(GO)" $(GO) run ./cmd/campaign-chaos -size short

## fuzz: every native fuzz target for FUZZTIME each (CI: 10s): any panic, 500 or broken bound it finds is a defect
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	./internal/templating:FuzzTemplate \
	./internal/campaign:FuzzCSVContacts \
	./internal/campaign:FuzzJSONContacts \
	./internal/campaign:FuzzNormalizePhone \
	./cmd/campaign-api:FuzzCreateCampaignForm \
	./cmd/campaign-api:FuzzWebhookBody
fuzz:
	@bash scripts/fuzz.sh "$(GO)" "$(FUZZTIME)" $(FUZZ_TARGETS)

## image: the container image wacampaign/wacampaign:$(TAG) without a Docker daemon (buildah, nothing pulled); docker build . works too
TAG ?= dev
image:
	GO="$(GO)" bash scripts/image.sh $(TAG)

## build: the two binaries in bin/
build:
	$(GO) build -o bin/ ./cmd/...

clean:
	rm -rf bin/ dist/
