#!/usr/bin/env bash
# Runs the whole test suite, as the README says: installs the Debian
# packages the tests drive (mosquitto clients and broker) when missing,
# then `go test` with the race detector, then the few tests that measure
# memory and so are built only without it (`//go:build !race`).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
if ((${#missing[@]})); then
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	echo "installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
fi

go test -race -count=1 -timeout 20m "$@" ./...
exec go test -count=1 -timeout 5m -run 'IdleConnectionMemory' ./mqtt
