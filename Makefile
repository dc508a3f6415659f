# keyway — `make help` lists the targets.
SHELL := bash
GO ?= go
CACHE := $(CURDIR)/.cache
TESTENV_BIN := $(CACHE)/testenv/bin
export KEYWAY_TESTENV_BIN := $(TESTENV_BIN)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 20s

.PHONY: help build test testenv bench fuzz lint demo clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/keyway
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/keyway ./cmd/keyway

testenv: ## install etcd; build kube-apiserver, vault, helm, kustomize, kubeseal, argocd-cmp-server into .cache/testenv/bin (each skipped when present)
	@bash internal/testenv/tools/install.sh $(TESTENV_BIN)

test: testenv ## run every test with the race detector against the real test environment
	$(GO) test -race -count=1 -timeout 30m ./...

bench: testenv ## run the benchmarks and print figures to compare run to run
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/reference
	$(GO) test -run '^$$' -fuzz '^FuzzCheckPath$$' -fuzztime $(FUZZTIME) ./internal/reference
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./plugins/render
	$(GO) test -run '^$$' -fuzz '^FuzzHybridDecrypt$$' -fuzztime $(FUZZTIME) ./sealing
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./sealing/agefile
	$(GO) test -run '^$$' -fuzz '^FuzzStreamMatchesRead$$' -fuzztime $(FUZZTIME) ./internal/manifest
	$(GO) test -run '^$$' -fuzz '^FuzzSplitManifests$$' -fuzztime $(FUZZTIME) ./plugins/helm
	$(GO) test -run '^$$' -fuzz '^FuzzStreamRequest$$' -fuzztime $(FUZZTIME) ./plugins/argocd/cmp
	$(GO) test -run '^$$' -fuzz '^FuzzUnpack$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./plugins/argocd/cmp
	$(GO) test -run '^$$' -fuzz '^FuzzUnpackLinks$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./plugins/argocd/cmp

generate: ## regenerate sync/api's deepcopy code and CRDs (controller-gen), examples/install/crds.yaml and the chart's copies
	$(GO) tool controller-gen object crd:crdVersions=v1 paths=./sync/api/... output:crd:dir=./sync/api/crds
	cp examples/sealedsecret/crd.yaml sync/api/crds/bitnami.com_sealedsecrets.yaml
	$(GO) run ./cmd/keyway crds > examples/install/crds.yaml
	cp examples/install/crds.yaml examples/chart/keyway/crds/crds.yaml
	cp examples/argocd/plugin.yaml examples/chart/keyway/files/plugin.yaml

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

demo: build ## render examples/quickstart with its demo-only age identity
	bin/keyway render \
	  --secrets-file examples/quickstart/secrets.enc.yaml \
	  --age-identity examples/quickstart/demo-identity.txt \
	  examples/quickstart/manifests

clean: ## remove build outputs (keeps the test binaries cache)
	rm -rf bin
