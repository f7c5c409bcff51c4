# wasmq — the commands a developer needs. `make help` lists them.
GO        ?= go
BIN       ?= bin/wasmq
CONFIG    ?= wasmq.toml
# The database `make bench-postgres` measures in (scratch schemas only).
PG_DSN    ?= postgres://postgres@127.0.0.1:5432/test
# Packages whose goroutines share state: always tested with the race detector.
RACE_PKGS ?= ./store/... ./host/... ./runner/... ./api/... ./enqueue/... ./client/...

.PHONY: help build run test test-race test-rest chaos lint fmt bench bench-postgres plugins clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## build bin/wasmq
	$(GO) build -o $(BIN) ./cmd/wasmq

run: build ## start wasmq serve on the embedded store with the example plugins
	./$(BIN) serve --config $(CONFIG)

test: lint test-race test-rest ## vet, format check and every test (needs PostgreSQL and Chromium: see .ci/run)

test-race: ## the concurrent packages under the race detector
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

# The HOT-update test measures whether PostgreSQL could prune its pages,
# which other packages' writes (flushing dirty buffers) prevent: it runs
# alone, after them.
SOLO_PG   ?= TestJobsEndOnThePageTheyWereInsertedOn

test-rest: ## every other package (CLI, config, UI in a real browser, examples), and the runner's CPU-bound shares without the race detector
	$(GO) test -count=1 -timeout 20m -skip '$(SOLO_PG)' $$($(GO) list ./... | grep -v -E '/(store|host|runner|api|enqueue|client)(/|$$)')
	$(GO) test -count=1 -timeout 5m -run '$(SOLO_PG)' ./bench/
	$(GO) test -count=1 -timeout 5m -run 'TestFuelRates|TestATenantOverItsFuelRate|TestAFuelRateHoldsForTheWorkOfEveryNode' ./runner/

chaos: ## the fault suite: kill -9 of nodes, PostgreSQL restarted, crashed under load, stopped for 75 s, frozen and its disk filled, a host vanished from the network, a tenant flooding slow reads, schedules across an outage (stops the local cluster: run it alone)
	$(GO) test -tags chaos -run Chaos -count=1 -v -timeout 20m ./cmd/wasmq/

lint: ## gofmt, go vet and a tidy go.mod/go.sum
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy (the diff above): run go mod tidy"; exit 1; }

fmt: ## format the Go sources
	gofmt -w $$(git ls-files '*.go')

bench: build ## Go benchmarks of store, host, HTTP and the schedules' pass, then the end-to-end `wasmq bench`
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/... ./host/... ./api/... ./schedule/...
	./$(BIN) bench --store sqlite --isolation pooled --jobs 10000
	./$(BIN) bench --store sqlite --isolation fresh --jobs 5000

bench-postgres: build ## PostgreSQL rounds in scratch schemas of PG_DSN: pgbench, single jobs and batches over HTTP, the run; ROUNDS=N, BACKLOG=N
	BIN=$(BIN) PG_DSN="$(PG_DSN)" bash bench/postgres.sh

plugins: ## rebuild every example .wasm from its source (rustc, Go, npm, wat2wasm)
	$(MAKE) -C plugins

clean: ## remove build outputs and the local database
	rm -rf bin data
