package dist

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// RouteKind says how a route's matches are delivered.
type RouteKind byte

// Route kinds.
const (
	Normal       RouteKind = 1 // every match is delivered
	Shared       RouteKind = 2 // $share/<group>/<filter>: one member route of the group per message, at random (a node's frontend then picks among its local members)
	OrderedShare RouteKind = 3 // $oshare/<group>/<filter>: each publisher pinned to one member
)

// Route is one subscription route: a tenant's topic filter, how its
// matches are delivered, and to whom.
type Route struct {
	Tenant   string
	Filter   string // the topic filter without its $share/$oshare prefix
	Kind     RouteKind
	Group    string // share group, for Shared and OrderedShare
	Receiver []byte // opaque to dist: the deliverer's receiver id
	// Incarnation is the incarnation that holds the route, as Match found
	// it; not part of the key. Unrouting a gone receiver with it cannot
	// undo a newer add of the same route.
	Incarnation uint64
}

// ErrBadFilter is wrapped by ParseFilter errors.
var ErrBadFilter = errors.New("dist: bad topic filter")

// ParseFilter splits a subscription's topic filter into its kind, share
// group and the filter proper.
func ParseFilter(f string) (kind RouteKind, group, filter string, err error) {
	if err := packet.ValidateTopicFilter(f); err != nil {
		return 0, "", "", fmt.Errorf("%w: %v", ErrBadFilter, err)
	}
	for _, p := range []struct {
		prefix string
		kind   RouteKind
	}{{packet.SharePrefix, Shared}, {packet.OrderedSharePrefix, OrderedShare}} {
		if rest, ok := strings.CutPrefix(f, p.prefix); ok {
			group, filter, _ = strings.Cut(rest, "/")
			return p.kind, group, filter, nil
		}
	}
	return Normal, "", f, nil
}

// Route keys order by tenant, then the filter's levels, so that a tenant's
// routes are contiguous and one filter's receivers are contiguous:
//
//	seg(tenant) seg(level1) ... seg(levelN) 0x00 0x02 kind seg(group) receiver
//
// seg(s) is s with every 0x00 byte written 0x00 0xFF, then 0x00 0x01. The
// encoding preserves order segment by segment, and the 0x00 0x02 end
// marker sorts after every level terminator of a shorter prefix, so every
// key of one filter shares the prefix seg(tenant) seg(levels...) 0x00 0x02.

func appendSeg(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xFF)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

var filterEnd = []byte{0, 2}

// filterPrefix is the key prefix of every route of (tenant, filter).
func filterPrefix(tenant, filter string) []byte {
	b := appendSeg(nil, tenant)
	for _, l := range strings.Split(filter, "/") {
		b = appendSeg(b, l)
	}
	return append(b, filterEnd...)
}

// RouteKey encodes r's key.
func RouteKey(r Route) []byte {
	b := filterPrefix(r.Tenant, r.Filter)
	b = append(b, byte(r.Kind))
	b = appendSeg(b, r.Group)
	return append(b, r.Receiver...)
}

// DecodeRouteKey decodes a key made by RouteKey.
func DecodeRouteKey(k []byte) (Route, error) {
	var r Route
	var segs []string
	for {
		s, rest, end, err := readSeg(k)
		if err != nil {
			return r, err
		}
		if end {
			k = rest
			break
		}
		segs = append(segs, s)
		k = rest
	}
	if len(segs) < 2 || len(k) < 1 {
		return r, errBadKey
	}
	r.Tenant, r.Filter = segs[0], strings.Join(segs[1:], "/")
	r.Kind = RouteKind(k[0])
	g, rest, end, err := readSeg(k[1:])
	if err != nil || end {
		return r, errBadKey
	}
	r.Group, r.Receiver = g, append([]byte(nil), rest...)
	return r, nil
}

var errBadKey = errors.New("dist: malformed route key")

// readSeg reads one segment, or reports the filter end marker.
func readSeg(b []byte) (seg string, rest []byte, end bool, err error) {
	if bytes.HasPrefix(b, filterEnd) {
		return "", b[2:], true, nil
	}
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			return "", nil, false, errBadKey
		}
		switch b[i+1] {
		case 0xFF:
			out = append(out, 0)
			i++
		case 1:
			return string(out), b[i+2:], false, nil
		default:
			return "", nil, false, errBadKey
		}
	}
	return "", nil, false, errBadKey
}
