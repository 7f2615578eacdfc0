package mqtt

import (
	"math/rand"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// TestHostileConnections opens 1,000 connections that misbehave in four
// ways: random garbage, half a CONNECT and then silence, a remaining length
// announcing a 256 MB packet, and a CONNECT dribbled one byte every 150 ms
// (slowloris). Meanwhile a well-behaved client must connect and be served.
// Afterwards every hostile connection must be closed by the server, counted
// as rejected, and its goroutine gone.
func TestHostileConnections(t *testing.T) {
	const perKind = 250
	reg := prometheus.NewRegistry()
	s := startServer(t, Options{ConnectTimeout: time.Second, Registerer: reg})
	addr := s.Addr(TCP).String()
	baseGoroutines := runtime.NumGoroutine()

	rnd := rand.New(rand.NewSource(1))
	garbage := make([][]byte, perKind)
	for i := range garbage {
		garbage[i] = make([]byte, 64+rnd.Intn(448))
		rnd.Read(garbage[i])
		if garbage[i][0]>>4 == byte(packet.CONNECT) {
			garbage[i][0] = 0xff // never a CONNECT: first packet rules apply
		}
	}
	connect := unhex(connectV311)
	attacks := []func(i int, nc net.Conn){
		func(i int, nc net.Conn) { nc.Write(garbage[i]) },
		func(i int, nc net.Conn) { nc.Write(connect[:7]) },
		func(i int, nc net.Conn) { nc.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}) },
		func(i int, nc net.Conn) {
			for _, b := range connect {
				if _, err := nc.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(150 * time.Millisecond)
			}
		},
	}

	var wg sync.WaitGroup
	closed := make(chan time.Duration, 4*perKind)
	for k, attack := range attacks {
		for i := 0; i < perKind; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Errorf("attack %d/%d: dial: %v", k, i, err)
					return
				}
				defer nc.Close()
				start := time.Now()
				go attack(i, nc)
				// The server must close the connection; it never answers.
				nc.SetReadDeadline(time.Now().Add(15 * time.Second))
				buf := make([]byte, 16)
				for {
					n, err := nc.Read(buf)
					if n > 0 {
						t.Errorf("attack %d/%d: server answered % x", k, i, buf[:n])
					}
					if err != nil {
						if ne, ok := err.(net.Error); ok && ne.Timeout() {
							t.Errorf("attack %d/%d: connection still open after 15 s", k, i)
						}
						closed <- time.Since(start)
						return
					}
				}
			}()
		}
	}

	// A well-behaved client is served throughout the attack.
	for round := 0; round < 5; round++ {
		c := dial(t, s)
		c.sendHex(connectV311)
		c.expectHex("20 02 00 00")
		c.sendHex("c0 00")
		c.expectHex("d0 00")
		c.sendHex("e0 00")
		c.expectClosed()
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	close(closed)
	var slowest time.Duration
	for d := range closed {
		slowest = max(slowest, d)
	}
	t.Logf("slowest hostile connection closed after %v", slowest)

	waitFor(t, func() bool { return s.Connections() == 0 })
	var rejected float64
	for _, reason := range []string{rejectConnectTimeout, rejectBadConnect, rejectNotConnect} {
		rejected += gatheredOr0(t, reg, `bifromq_mqtt_connections_rejected_total{reason="`+reason+`"}`)
	}
	if rejected != 4*perKind {
		t.Fatalf("%v connections counted as rejected, want %d", rejected, 4*perKind)
	}
	if got := gathered(t, reg, `bifromq_mqtt_connections{listener="tcp"}`); got != 0 {
		t.Fatalf("connections gauge %v after the attack", got)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= baseGoroutines+5 })
}

func gatheredOr0(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	v, _ := lookup(t, reg, series)
	return v
}
