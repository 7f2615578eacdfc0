package basekv_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/basekv"
)

// Three nodes in one process, sharing a directory, hold a KV store with
// three voters per range: a write through one node is read through
// another, across a split.
func Example() {
	dir := basekv.NewDirectory()
	var kvs []*basekv.KV
	for i := 0; i < 3; i++ {
		data, _ := os.MkdirTemp("", "basekv-example-")
		defer os.RemoveAll(data)
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		node, err := basekv.Open(basekv.Options{DataDir: data, RaftAddr: addr, Directory: dir,
			LogDB: basekv.LogDBTiny, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer node.Close()
		kv, err := node.KV("example", basekv.ReplicaOptions{Voters: 3})
		if err != nil {
			fmt.Println(err)
			return
		}
		kvs = append(kvs, kv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i, k := range []string{"apple", "banana", "cherry"} {
		if err := kvs[i].Put(ctx, []byte(k), []byte(fmt.Sprint(len(k)))); err != nil {
			fmt.Println(err)
			return
		}
	}
	if _, err := kvs[0].Store().Split(ctx, []byte("b")); err != nil {
		fmt.Println(err)
		return
	}
	v, _, _ := kvs[2].Get(ctx, []byte("apple"))
	fmt.Printf("apple=%s\n", v)
	pairs, _ := kvs[1].Scan(ctx, nil, nil, 0)
	var out []string
	for _, p := range pairs {
		out = append(out, fmt.Sprintf("%s=%s", p.Key, p.Value))
	}
	fmt.Println(strings.Join(out, " "))
	fmt.Printf("ranges: %d\n", len(kvs[1].Store().Ranges()))
	// Output:
	// apple=5
	// apple=5 banana=6 cherry=6
	// ranges: 2
}
