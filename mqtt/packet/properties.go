package packet

import (
	"fmt"
	"math/bits"
	"strings"
)

// PropID is a v5 property identifier (MQTT 5 §2.2.2.2).
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

var propNameTable = [64]string{
	0x01: "payload format indicator", 0x02: "message expiry interval", 0x03: "content type",
	0x08: "response topic", 0x09: "correlation data", 0x0B: "subscription identifier",
	0x11: "session expiry interval", 0x12: "assigned client identifier",
	0x13: "server keep alive", 0x15: "authentication method", 0x16: "authentication data",
	0x17: "request problem information", 0x18: "will delay interval",
	0x19: "request response information", 0x1A: "response information",
	0x1C: "server reference", 0x1F: "reason string", 0x21: "receive maximum",
	0x22: "topic alias maximum", 0x23: "topic alias", 0x24: "maximum QoS",
	0x25: "retain available", 0x26: "user property", 0x27: "maximum packet size",
	0x28: "wildcard subscription available", 0x29: "subscription identifier available",
	0x2A: "shared subscription available",
}

func (id PropID) String() string {
	if id < 64 && propNameTable[id] != "" {
		return propNameTable[id]
	}
	return fmt.Sprintf("property 0x%02x", byte(id))
}

// UserProperty is a name/value pair (property 0x26). Order and duplicates
// are preserved.
type UserProperty struct {
	Key, Value string
}

// Properties are the v5 properties of a packet or of a will. A property is
// present, and is encoded, when its field is not the zero value or when it
// was marked with Mark (needed to send a zero value, such as Maximum QoS 0
// or Retain Available 0). Unpack marks every property it reads, so a
// decoded zero value survives a round trip. Semantics of absence (for
// example Receive Maximum absent means 65535) are the caller's.
type Properties struct {
	marked uint64 // bit id: property id was decoded or Mark-ed

	PayloadFormat        byte           // 0x01: 0 bytes, 1 UTF-8
	MessageExpiry        uint32         // 0x02: seconds
	ContentType          string         // 0x03
	ResponseTopic        string         // 0x08
	CorrelationData      []byte         // 0x09
	SubscriptionIDs      []uint32       // 0x0B: one in SUBSCRIBE, any number in PUBLISH
	SessionExpiry        uint32         // 0x11: seconds; 0xFFFFFFFF never expires
	AssignedClientID     string         // 0x12
	ServerKeepAlive      uint16         // 0x13: seconds
	AuthMethod           string         // 0x15
	AuthData             []byte         // 0x16
	RequestProblemInfo   byte           // 0x17: absent means 1
	WillDelay            uint32         // 0x18: seconds
	RequestResponseInfo  byte           // 0x19
	ResponseInfo         string         // 0x1A
	ServerReference      string         // 0x1C
	ReasonString         string         // 0x1F
	ReceiveMaximum       uint16         // 0x21: absent means 65535
	TopicAliasMaximum    uint16         // 0x22
	TopicAlias           uint16         // 0x23
	MaximumQoS           byte           // 0x24: absent means 2
	RetainAvailable      byte           // 0x25: absent means 1
	User                 []UserProperty // 0x26
	MaximumPacketSize    uint32         // 0x27: absent means no limit
	WildcardSubAvailable byte           // 0x28: absent means 1
	SubIDAvailable       byte           // 0x29: absent means 1
	SharedSubAvailable   byte           // 0x2A: absent means 1
}

// Mark marks property id present even when its value is zero.
func (p *Properties) Mark(id PropID) { p.marked |= 1 << (id & 63) }

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool { return id < 64 && p.presence()&(1<<id) != 0 }

// presence returns the set of present properties, bit id for property id.
func (p *Properties) presence() uint64 {
	m := p.marked
	set := func(cond bool, id PropID) {
		if cond {
			m |= 1 << id
		}
	}
	set(p.PayloadFormat != 0, PropPayloadFormat)
	set(p.MessageExpiry != 0, PropMessageExpiry)
	set(p.ContentType != "", PropContentType)
	set(p.ResponseTopic != "", PropResponseTopic)
	set(len(p.CorrelationData) != 0, PropCorrelationData)
	set(len(p.SubscriptionIDs) != 0, PropSubscriptionID)
	set(p.SessionExpiry != 0, PropSessionExpiry)
	set(p.AssignedClientID != "", PropAssignedClientID)
	set(p.ServerKeepAlive != 0, PropServerKeepAlive)
	set(p.AuthMethod != "", PropAuthMethod)
	set(len(p.AuthData) != 0, PropAuthData)
	set(p.RequestProblemInfo != 0, PropRequestProblemInfo)
	set(p.WillDelay != 0, PropWillDelay)
	set(p.RequestResponseInfo != 0, PropRequestResponseInfo)
	set(p.ResponseInfo != "", PropResponseInfo)
	set(p.ServerReference != "", PropServerReference)
	set(p.ReasonString != "", PropReasonString)
	set(p.ReceiveMaximum != 0, PropReceiveMaximum)
	set(p.TopicAliasMaximum != 0, PropTopicAliasMaximum)
	set(p.TopicAlias != 0, PropTopicAlias)
	set(p.MaximumQoS != 0, PropMaximumQoS)
	set(p.RetainAvailable != 0, PropRetainAvailable)
	set(len(p.User) != 0, PropUser)
	set(p.MaximumPacketSize != 0, PropMaximumPacketSize)
	set(p.WildcardSubAvailable != 0, PropWildcardSubAvailable)
	set(p.SubIDAvailable != 0, PropSubIDAvailable)
	set(p.SharedSubAvailable != 0, PropSharedSubAvailable)
	return m
}

// Reset clears p, keeping the capacity of its slices.
func (p *Properties) Reset() {
	ids, user := p.SubscriptionIDs[:0], p.User[:0]
	*p = Properties{SubscriptionIDs: ids, User: user}
}

// Clone returns a deep copy of p.
func (p *Properties) Clone() Properties {
	c := *p
	c.CorrelationData = cloneBytes(p.CorrelationData)
	c.AuthData = cloneBytes(p.AuthData)
	if p.SubscriptionIDs != nil {
		c.SubscriptionIDs = append([]uint32(nil), p.SubscriptionIDs...)
	}
	if p.User != nil {
		c.User = append([]UserProperty(nil), p.User...)
	}
	return c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// propSet is a set of property identifiers.
type propSet uint64

func props(ids ...PropID) propSet {
	var s propSet
	for _, id := range ids {
		s |= 1 << id
	}
	return s
}

func (s propSet) has(id PropID) bool { return id < 64 && s&(1<<id) != 0 }

// The properties each packet (and a will) may carry (MQTT 5 §2.2.2.2).
var (
	connectProps = props(PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
		PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUser,
		PropMaximumPacketSize)
	willProps = props(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropWillDelay, PropUser)
	connackProps = props(PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive,
		PropAuthMethod, PropAuthData, PropResponseInfo, PropServerReference, PropReasonString,
		PropReceiveMaximum, PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUser,
		PropMaximumPacketSize, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable)
	publishProps = props(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUser)
	ackProps         = props(PropReasonString, PropUser)
	subscribeProps   = props(PropSubscriptionID, PropUser)
	unsubscribeProps = props(PropUser)
	disconnectProps  = props(PropSessionExpiry, PropServerReference, PropReasonString, PropUser)
	authProps        = props(PropAuthMethod, PropAuthData, PropReasonString, PropUser)
)

// unpack decodes a property block (length and properties) from r into p,
// which it resets first. allowed lists the properties the packet may carry;
// where names the packet (or "will") in errors; repeatSubID allows several
// subscription identifiers (PUBLISH).
func (p *Properties) unpack(r *reader, allowed propSet, where string, repeatSubID bool) {
	p.Reset()
	if r.err != nil {
		return
	}
	n := int(r.varint("properties length"))
	if !r.need(n, "properties") {
		prefixErr(r, where)
		return
	}
	sub := reader{b: r.b[:r.off+n], off: r.off}
	for sub.err == nil && sub.off < len(sub.b) {
		id := PropID(sub.varint("property identifier"))
		if sub.err != nil {
			break
		}
		if id >= 64 || propNameTable[id] == "" {
			sub.fail(MalformedPacket, "unknown property identifier 0x%02x", byte(id))
			break
		}
		if !allowed.has(id) {
			sub.fail(MalformedPacket, "%s is not allowed on this packet", id)
			break
		}
		repeatable := id == PropUser || (id == PropSubscriptionID && repeatSubID)
		if !repeatable && p.marked&(1<<id) != 0 {
			sub.fail(ProtocolError, "%s appears more than once", id)
			break
		}
		p.marked |= 1 << id
		p.unpackOne(&sub, id)
	}
	r.off, r.err = sub.off, sub.err
	prefixErr(r, where)
}

// prefixErr puts where in front of r's error message.
func prefixErr(r *reader, where string) {
	if e, ok := r.err.(*Error); ok && where != "" && !strings.HasPrefix(e.Msg, where) {
		e.Msg = where + " " + e.Msg
	}
}

func (p *Properties) unpackOne(r *reader, id PropID) {
	what := propNameTable[id]
	bool01 := func(v byte) byte {
		if v > 1 && r.err == nil {
			r.fail(ProtocolError, "%s: value %d is not 0 or 1", id, v)
		}
		return v
	}
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = bool01(r.u8(what))
	case PropMessageExpiry:
		p.MessageExpiry = r.u32(what)
	case PropContentType:
		p.ContentType = r.str(what)
	case PropResponseTopic:
		p.ResponseTopic = r.str(what)
		if r.err == nil {
			if err := ValidateTopicName(p.ResponseTopic); err != nil {
				r.fail(ProtocolError, "%s: %v", id, err.(*Error).Msg)
			}
		}
	case PropCorrelationData:
		p.CorrelationData = r.binary(what)
	case PropSubscriptionID:
		v := r.varint(what)
		if r.err == nil && v == 0 {
			r.fail(ProtocolError, "%s: 0 is not allowed", id)
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
	case PropSessionExpiry:
		p.SessionExpiry = r.u32(what)
	case PropAssignedClientID:
		p.AssignedClientID = r.str(what)
	case PropServerKeepAlive:
		p.ServerKeepAlive = r.u16(what)
	case PropAuthMethod:
		p.AuthMethod = r.str(what)
	case PropAuthData:
		p.AuthData = r.binary(what)
	case PropRequestProblemInfo:
		p.RequestProblemInfo = bool01(r.u8(what))
	case PropWillDelay:
		p.WillDelay = r.u32(what)
	case PropRequestResponseInfo:
		p.RequestResponseInfo = bool01(r.u8(what))
	case PropResponseInfo:
		p.ResponseInfo = r.str(what)
	case PropServerReference:
		p.ServerReference = r.str(what)
	case PropReasonString:
		p.ReasonString = r.str(what)
	case PropReceiveMaximum:
		p.ReceiveMaximum = r.u16(what)
		if r.err == nil && p.ReceiveMaximum == 0 {
			r.fail(ProtocolError, "%s: 0 is not allowed", id)
		}
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = r.u16(what)
	case PropTopicAlias:
		p.TopicAlias = r.u16(what)
		if r.err == nil && p.TopicAlias == 0 {
			r.fail(TopicAliasInvalid, "%s: 0 is not allowed", id)
		}
	case PropMaximumQoS:
		p.MaximumQoS = bool01(r.u8(what))
	case PropRetainAvailable:
		p.RetainAvailable = bool01(r.u8(what))
	case PropUser:
		k := r.str("user property name")
		v := r.str("user property value")
		p.User = append(p.User, UserProperty{Key: k, Value: v})
	case PropMaximumPacketSize:
		p.MaximumPacketSize = r.u32(what)
		if r.err == nil && p.MaximumPacketSize == 0 {
			r.fail(ProtocolError, "%s: 0 is not allowed", id)
		}
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = bool01(r.u8(what))
	case PropSubIDAvailable:
		p.SubIDAvailable = bool01(r.u8(what))
	case PropSharedSubAvailable:
		p.SharedSubAvailable = bool01(r.u8(what))
	}
}

// size returns the length of the property block's content (without its
// length prefix), checking that every present property is allowed.
func (p *Properties) size(allowed propSet, t string, s *sizer) int {
	n := 0
	for m := p.presence(); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		if !allowed.has(id) {
			s.fail("%s is not allowed on %s", id, t)
			continue
		}
		switch id {
		case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
			PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
			n += 2
		case PropServerKeepAlive, PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias:
			n += 3
		case PropMessageExpiry, PropSessionExpiry, PropWillDelay, PropMaximumPacketSize:
			n += 5
		case PropSubscriptionID:
			for _, v := range p.SubscriptionIDs {
				if v == 0 || v > MaxRemaining {
					s.fail("subscription identifier %d is outside [1, %d]", v, MaxRemaining)
				}
				n += 1 + varintLen(v)
			}
		case PropUser:
			for _, u := range p.User {
				var us sizer
				us.str("user property name", len(u.Key))
				us.str("user property value", len(u.Value))
				if us.err != nil {
					s.fail("%v", us.err.(*Error).Msg)
				}
				n += 1 + us.n
			}
		default:
			l := p.strLen(id)
			var ss sizer
			ss.str(id.String(), l)
			if ss.err != nil {
				s.fail("%v", ss.err.(*Error).Msg)
			}
			n += 1 + ss.n
		}
	}
	return n
}

func (p *Properties) strLen(id PropID) int {
	switch id {
	case PropContentType:
		return len(p.ContentType)
	case PropResponseTopic:
		return len(p.ResponseTopic)
	case PropCorrelationData:
		return len(p.CorrelationData)
	case PropAssignedClientID:
		return len(p.AssignedClientID)
	case PropAuthMethod:
		return len(p.AuthMethod)
	case PropAuthData:
		return len(p.AuthData)
	case PropResponseInfo:
		return len(p.ResponseInfo)
	case PropServerReference:
		return len(p.ServerReference)
	case PropReasonString:
		return len(p.ReasonString)
	}
	return 0
}

// append appends the property block (length prefix and content) of n
// content bytes, as computed by size.
func (p *Properties) append(dst []byte, n int) []byte {
	dst = appendVarint(dst, uint32(n))
	if n == 0 {
		return dst
	}
	for m := p.presence(); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch id {
		case PropPayloadFormat:
			dst = append(dst, byte(id), p.PayloadFormat)
		case PropRequestProblemInfo:
			dst = append(dst, byte(id), p.RequestProblemInfo)
		case PropRequestResponseInfo:
			dst = append(dst, byte(id), p.RequestResponseInfo)
		case PropMaximumQoS:
			dst = append(dst, byte(id), p.MaximumQoS)
		case PropRetainAvailable:
			dst = append(dst, byte(id), p.RetainAvailable)
		case PropWildcardSubAvailable:
			dst = append(dst, byte(id), p.WildcardSubAvailable)
		case PropSubIDAvailable:
			dst = append(dst, byte(id), p.SubIDAvailable)
		case PropSharedSubAvailable:
			dst = append(dst, byte(id), p.SharedSubAvailable)
		case PropServerKeepAlive:
			dst = appendU16(append(dst, byte(id)), p.ServerKeepAlive)
		case PropReceiveMaximum:
			dst = appendU16(append(dst, byte(id)), p.ReceiveMaximum)
		case PropTopicAliasMaximum:
			dst = appendU16(append(dst, byte(id)), p.TopicAliasMaximum)
		case PropTopicAlias:
			dst = appendU16(append(dst, byte(id)), p.TopicAlias)
		case PropMessageExpiry:
			dst = appendU32(append(dst, byte(id)), p.MessageExpiry)
		case PropSessionExpiry:
			dst = appendU32(append(dst, byte(id)), p.SessionExpiry)
		case PropWillDelay:
			dst = appendU32(append(dst, byte(id)), p.WillDelay)
		case PropMaximumPacketSize:
			dst = appendU32(append(dst, byte(id)), p.MaximumPacketSize)
		case PropSubscriptionID:
			for _, v := range p.SubscriptionIDs {
				dst = appendVarint(append(dst, byte(id)), v)
			}
		case PropUser:
			for _, u := range p.User {
				dst = appendString(appendString(append(dst, byte(id)), u.Key), u.Value)
			}
		case PropCorrelationData:
			dst = appendBinary(append(dst, byte(id)), p.CorrelationData)
		case PropAuthData:
			dst = appendBinary(append(dst, byte(id)), p.AuthData)
		case PropContentType:
			dst = appendString(append(dst, byte(id)), p.ContentType)
		case PropResponseTopic:
			dst = appendString(append(dst, byte(id)), p.ResponseTopic)
		case PropAssignedClientID:
			dst = appendString(append(dst, byte(id)), p.AssignedClientID)
		case PropAuthMethod:
			dst = appendString(append(dst, byte(id)), p.AuthMethod)
		case PropResponseInfo:
			dst = appendString(append(dst, byte(id)), p.ResponseInfo)
		case PropServerReference:
			dst = appendString(append(dst, byte(id)), p.ServerReference)
		case PropReasonString:
			dst = appendString(append(dst, byte(id)), p.ReasonString)
		}
	}
	return dst
}

// String lists the present properties, for logs and golden files.
func (p *Properties) String() string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for m := p.presence(); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(id.String())
		b.WriteString(": ")
		switch id {
		case PropPayloadFormat:
			fmt.Fprint(&b, p.PayloadFormat)
		case PropMessageExpiry:
			fmt.Fprint(&b, p.MessageExpiry)
		case PropContentType:
			fmt.Fprintf(&b, "%q", p.ContentType)
		case PropResponseTopic:
			fmt.Fprintf(&b, "%q", p.ResponseTopic)
		case PropCorrelationData:
			fmt.Fprintf(&b, "%x", p.CorrelationData)
		case PropSubscriptionID:
			fmt.Fprint(&b, p.SubscriptionIDs)
		case PropSessionExpiry:
			fmt.Fprint(&b, p.SessionExpiry)
		case PropAssignedClientID:
			fmt.Fprintf(&b, "%q", p.AssignedClientID)
		case PropServerKeepAlive:
			fmt.Fprint(&b, p.ServerKeepAlive)
		case PropAuthMethod:
			fmt.Fprintf(&b, "%q", p.AuthMethod)
		case PropAuthData:
			fmt.Fprintf(&b, "%x", p.AuthData)
		case PropRequestProblemInfo:
			fmt.Fprint(&b, p.RequestProblemInfo)
		case PropWillDelay:
			fmt.Fprint(&b, p.WillDelay)
		case PropRequestResponseInfo:
			fmt.Fprint(&b, p.RequestResponseInfo)
		case PropResponseInfo:
			fmt.Fprintf(&b, "%q", p.ResponseInfo)
		case PropServerReference:
			fmt.Fprintf(&b, "%q", p.ServerReference)
		case PropReasonString:
			fmt.Fprintf(&b, "%q", p.ReasonString)
		case PropReceiveMaximum:
			fmt.Fprint(&b, p.ReceiveMaximum)
		case PropTopicAliasMaximum:
			fmt.Fprint(&b, p.TopicAliasMaximum)
		case PropTopicAlias:
			fmt.Fprint(&b, p.TopicAlias)
		case PropMaximumQoS:
			fmt.Fprint(&b, p.MaximumQoS)
		case PropRetainAvailable:
			fmt.Fprint(&b, p.RetainAvailable)
		case PropUser:
			for i, u := range p.User {
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "%q=%q", u.Key, u.Value)
			}
		case PropMaximumPacketSize:
			fmt.Fprint(&b, p.MaximumPacketSize)
		case PropWildcardSubAvailable:
			fmt.Fprint(&b, p.WildcardSubAvailable)
		case PropSubIDAvailable:
			fmt.Fprint(&b, p.SubIDAvailable)
		case PropSharedSubAvailable:
			fmt.Fprint(&b, p.SharedSubAvailable)
		}
	}
	b.WriteByte('}')
	return b.String()
}
