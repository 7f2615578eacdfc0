package retain

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bifromq-go/bifromq/basekv"
	"github.com/bifromq-go/bifromq/dist"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// dragonboat's process-wide goroutines (see basekv's tests).
		goleak.IgnoreTopFunction("github.com/lni/goutils/syncutil.(*Stopper).runWorker.func1"),
		goleak.IgnoreAnyFunction("github.com/lni/dragonboat/v4/internal/logdb/kv/pebble.(*eventListener).notify"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble.(*DB).maybeScheduleCompactionPicker.func1"),
	)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openNode starts a one-node basekv on dir; Cleanup closes it.
func openNode(t testing.TB, dir, addr string) *basekv.Node {
	t.Helper()
	n, err := basekv.Open(basekv.Options{DataDir: dir, RaftAddr: addr, RTT: 10 * time.Millisecond,
		LogDB: basekv.LogDBTiny, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// openClient opens a retain Client on n; Cleanup closes it.
func openClient(t testing.TB, n *basekv.Node, opts Options) *Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	c, err := OpenOptions(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newClient is a Client on a fresh one-node basekv, background GC off.
func newClient(t testing.TB) *Client {
	t.Helper()
	return openClient(t, openNode(t, t.TempDir(), freeAddr(t)), Options{GCInterval: -1})
}

func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func msg(topic, payload string) *dist.Message {
	return &dist.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Publisher: "p"}
}

// bruteMatch is the reference: MQTT 5 §4.7 matching of one filter.
func bruteMatch(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(t) || (fl != "+" && fl != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

// memReader is a coproc.Reader over sorted keys that counts what it reads.
type memReader struct {
	keys     [][]byte
	vals     map[string][]byte
	iterates int // Iterate calls (seeks)
	read     int // keys handed to fn
}

func newMemReader() *memReader { return &memReader{vals: map[string][]byte{}} }

// put adds or replaces a key; call sort after a batch of puts.
func (r *memReader) put(k, v []byte) {
	if _, ok := r.vals[string(k)]; !ok {
		r.keys = append(r.keys, k)
	}
	r.vals[string(k)] = v
}

func (r *memReader) sort() {
	sort.Slice(r.keys, func(i, j int) bool { return bytes.Compare(r.keys[i], r.keys[j]) < 0 })
}

func (r *memReader) retain(tenant string, m *dist.Message) {
	v, err := m.MarshalBinary()
	if err != nil {
		panic(err)
	}
	r.put(topicKey(tenant, m.Topic), v)
}

func (r *memReader) Get(k []byte) ([]byte, bool, error) {
	v, ok := r.vals[string(k)]
	return v, ok, nil
}

func (r *memReader) Iterate(lower, upper []byte, fn func(k, v []byte) bool) error {
	r.iterates++
	i := sort.Search(len(r.keys), func(i int) bool { return bytes.Compare(r.keys[i], lower) >= 0 })
	for ; i < len(r.keys) && (upper == nil || bytes.Compare(r.keys[i], upper) < 0); i++ {
		r.read++
		if !fn(r.keys[i], r.vals[string(r.keys[i])]) {
			break
		}
	}
	return nil
}

// walkTopics runs the match walk and returns the matched topics in order.
func walkTopics(t testing.TB, r *memReader, tenant, filter string, from []byte, limit int, now time.Time) []string {
	t.Helper()
	var out []string
	_, err := matchWalk(r, tenant, filter, from, limit, now, func(k, _ []byte) {
		_, topic, ok := decodeKey(k)
		if !ok {
			t.Fatalf("undecodable key %q", k)
		}
		out = append(out, topic)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func topics(ms []*dist.Message) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Topic)
	}
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// fill retains n messages of tenant, topic(i) for i in [0, n), from 50
// goroutines so that basekv group-commits them.
func fill(t testing.TB, c *Client, tenant string, n int, topic func(i int) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const workers = 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := c.Retain(ctx, tenant, msg(topic(i), fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
