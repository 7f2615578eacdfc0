# The README's commands. `make test` is what CI runs (.ci/run).
.PHONY: run test fuzz bench vet

run:
	go run ./cmd/bifromq

test:
	./scripts/test.sh

# The codec's fuzzer, 60 s (go test allows one fuzz target per run).
fuzz:
	go test ./mqtt/packet -run '^$$' -fuzz FuzzDecode -fuzztime 60s

bench:
	go test ./mqtt/packet -run '^$$' -bench . -benchmem

vet:
	gofmt -l . | (! grep .)
	go vet ./...
