//go:build tools

// Package pins keeps the project's pinned dependencies in go.mod before the
// packages that use them land. It is never built: the "tools" build tag is
// only seen by `go mod tidy`, which keeps every import below as a requirement
// at the exact version go.mod names.
package pins

import (
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/eclipse/paho.golang/paho"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/gorilla/websocket"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/lni/dragonboat/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/valyala/fasthttp"
	_ "go.uber.org/goleak"
	_ "go.yaml.in/yaml/v3"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/proto"
)
