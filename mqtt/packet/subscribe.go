package packet

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            string
	QoS               QoS
	NoLocal           bool // v5
	RetainAsPublished bool // v5
	RetainHandling    byte // v5: 0 send retained, 1 only for a new subscription, 2 never
}

// Subscribe is a SUBSCRIBE packet (MQTT 5 §3.8). Filters are not checked
// for wildcard placement here: see ValidateTopicFilter.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // v5 only
	Subscriptions []Subscription
}

// Type implements Packet.
func (*Subscribe) Type() Type { return SUBSCRIBE }

// Unpack implements Packet.
func (s *Subscribe) Unpack(flags byte, body []byte, v Version) error {
	if flags != 2 {
		return errorf(MalformedPacket, "SUBSCRIBE fixed header flags %#x, want 0x2", flags)
	}
	s.Subscriptions = s.Subscriptions[:0]
	r := reader{b: body}
	s.PacketID = r.u16("packet identifier")
	if r.err == nil && s.PacketID == 0 {
		return errorf(ProtocolError, "SUBSCRIBE with packet identifier 0")
	}
	if v == V5 {
		s.Properties.unpack(&r, subscribeProps, "SUBSCRIBE", false)
	} else {
		s.Properties.Reset()
	}
	for r.err == nil && r.left() > 0 {
		f := r.str("topic filter")
		o := r.u8("subscription options")
		if r.err != nil {
			break
		}
		sub := Subscription{Filter: f, QoS: QoS(o & 3)}
		if sub.QoS > ExactlyOnce {
			return errorf(MalformedPacket, "SUBSCRIBE QoS 3 for %q", f)
		}
		if v == V5 {
			if o&0xC0 != 0 {
				return errorf(MalformedPacket, "SUBSCRIBE reserved option bits set for %q", f)
			}
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = o >> 4 & 3
			if sub.RetainHandling == 3 {
				return errorf(ProtocolError, "SUBSCRIBE retain handling 3 for %q", f)
			}
		} else if o&^3 != 0 {
			return errorf(MalformedPacket, "SUBSCRIBE reserved option bits set for %q", f)
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if r.err == nil && len(s.Subscriptions) == 0 {
		return errorf(ProtocolError, "SUBSCRIBE without a topic filter")
	}
	return r.err
}

// Append implements Packet. For v3 it ignores the properties and the v5
// subscription options.
func (s *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	var z sizer
	if s.PacketID == 0 {
		z.fail("SUBSCRIBE needs a packet identifier")
	}
	if len(s.Subscriptions) == 0 {
		z.fail("SUBSCRIBE needs a topic filter")
	}
	if len(s.Properties.SubscriptionIDs) > 1 {
		z.fail("SUBSCRIBE carries at most one subscription identifier")
	}
	z.n = 2
	var propLen int
	if v == V5 {
		propLen = s.Properties.size(subscribeProps, "SUBSCRIBE", &z)
		z.n += varintLen(uint32(propLen)) + propLen
	}
	for _, sub := range s.Subscriptions {
		z.str("topic filter", len(sub.Filter))
		z.n++
		if sub.QoS > ExactlyOnce || sub.RetainHandling > 2 {
			z.fail("SUBSCRIBE options of %q", sub.Filter)
		}
	}
	n, err := z.finish(SUBSCRIBE)
	if err != nil {
		return dst, err
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, SUBSCRIBE, 2, n)
	dst = appendU16(dst, s.PacketID)
	if v == V5 {
		dst = s.Properties.append(dst, propLen)
	}
	for _, sub := range s.Subscriptions {
		dst = appendString(dst, sub.Filter)
		o := byte(sub.QoS)
		if v == V5 {
			if sub.NoLocal {
				o |= 0x04
			}
			if sub.RetainAsPublished {
				o |= 0x08
			}
			o |= sub.RetainHandling << 4
		}
		dst = append(dst, o)
	}
	return dst, nil
}

// Suback is a SUBACK packet (MQTT 5 §3.9): one code per filter, in order.
type Suback struct {
	PacketID    uint16
	Properties  Properties // v5 only
	ReasonCodes []ReasonCode
}

// Type implements Packet.
func (*Suback) Type() Type { return SUBACK }

// Unpack implements Packet.
func (s *Suback) Unpack(flags byte, body []byte, v Version) error {
	if flags != 0 {
		return errorf(MalformedPacket, "SUBACK fixed header flags %#x are reserved", flags)
	}
	s.ReasonCodes = s.ReasonCodes[:0]
	r := reader{b: body}
	s.PacketID = r.u16("packet identifier")
	if r.err == nil && s.PacketID == 0 {
		return errorf(ProtocolError, "SUBACK with packet identifier 0")
	}
	if v == V5 {
		s.Properties.unpack(&r, ackProps, "SUBACK", false)
	} else {
		s.Properties.Reset()
	}
	if r.err != nil {
		return r.err
	}
	for _, c := range r.rest() {
		code := ReasonCode(c)
		if v == V5 && !subackCodes.has(code) || v != V5 && code > GrantedQoS2 && code != UnspecifiedError {
			return errorf(ProtocolError, "SUBACK code 0x%02x is not allowed", c)
		}
		s.ReasonCodes = append(s.ReasonCodes, code)
	}
	if len(s.ReasonCodes) == 0 {
		return errorf(ProtocolError, "SUBACK without a reason code")
	}
	return nil
}

// Append implements Packet. For v3 every failure code becomes 0x80.
func (s *Suback) Append(dst []byte, v Version) ([]byte, error) {
	var z sizer
	if s.PacketID == 0 {
		z.fail("SUBACK needs a packet identifier")
	}
	if len(s.ReasonCodes) == 0 {
		z.fail("SUBACK needs a reason code")
	}
	z.n = 2 + len(s.ReasonCodes)
	var propLen int
	if v == V5 {
		for _, c := range s.ReasonCodes {
			if !subackCodes.has(c) {
				z.fail("SUBACK code %#x", byte(c))
			}
		}
		propLen = s.Properties.size(ackProps, "SUBACK", &z)
		z.n += varintLen(uint32(propLen)) + propLen
	}
	n, err := z.finish(SUBACK)
	if err != nil {
		return dst, err
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, SUBACK, 0, n)
	dst = appendU16(dst, s.PacketID)
	if v == V5 {
		dst = s.Properties.append(dst, propLen)
	}
	for _, c := range s.ReasonCodes {
		if v != V5 && c.IsError() {
			c = UnspecifiedError
		}
		dst = append(dst, byte(c))
	}
	return dst, nil
}

// Unsubscribe is an UNSUBSCRIBE packet (MQTT 5 §3.10).
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // v5 only
	Filters    []string
}

// Type implements Packet.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// Unpack implements Packet.
func (u *Unsubscribe) Unpack(flags byte, body []byte, v Version) error {
	if flags != 2 {
		return errorf(MalformedPacket, "UNSUBSCRIBE fixed header flags %#x, want 0x2", flags)
	}
	u.Filters = u.Filters[:0]
	r := reader{b: body}
	u.PacketID = r.u16("packet identifier")
	if r.err == nil && u.PacketID == 0 {
		return errorf(ProtocolError, "UNSUBSCRIBE with packet identifier 0")
	}
	if v == V5 {
		u.Properties.unpack(&r, unsubscribeProps, "UNSUBSCRIBE", false)
	} else {
		u.Properties.Reset()
	}
	for r.err == nil && r.left() > 0 {
		f := r.str("topic filter")
		if r.err == nil {
			u.Filters = append(u.Filters, f)
		}
	}
	if r.err == nil && len(u.Filters) == 0 {
		return errorf(ProtocolError, "UNSUBSCRIBE without a topic filter")
	}
	return r.err
}

// Append implements Packet. For v3 it ignores the properties.
func (u *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	var z sizer
	if u.PacketID == 0 {
		z.fail("UNSUBSCRIBE needs a packet identifier")
	}
	if len(u.Filters) == 0 {
		z.fail("UNSUBSCRIBE needs a topic filter")
	}
	z.n = 2
	var propLen int
	if v == V5 {
		propLen = u.Properties.size(unsubscribeProps, "UNSUBSCRIBE", &z)
		z.n += varintLen(uint32(propLen)) + propLen
	}
	for _, f := range u.Filters {
		z.str("topic filter", len(f))
	}
	n, err := z.finish(UNSUBSCRIBE)
	if err != nil {
		return dst, err
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, UNSUBSCRIBE, 2, n)
	dst = appendU16(dst, u.PacketID)
	if v == V5 {
		dst = u.Properties.append(dst, propLen)
	}
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}

// Unsuback is an UNSUBACK packet (MQTT 5 §3.11). v3 carries no codes.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties   // v5 only
	ReasonCodes []ReasonCode // v5 only: one per filter, in order
}

// Type implements Packet.
func (*Unsuback) Type() Type { return UNSUBACK }

// Unpack implements Packet.
func (u *Unsuback) Unpack(flags byte, body []byte, v Version) error {
	if flags != 0 {
		return errorf(MalformedPacket, "UNSUBACK fixed header flags %#x are reserved", flags)
	}
	u.ReasonCodes = u.ReasonCodes[:0]
	r := reader{b: body}
	u.PacketID = r.u16("packet identifier")
	if r.err == nil && u.PacketID == 0 {
		return errorf(ProtocolError, "UNSUBACK with packet identifier 0")
	}
	if v != V5 {
		u.Properties.Reset()
		r.done("UNSUBACK")
		return r.err
	}
	u.Properties.unpack(&r, ackProps, "UNSUBACK", false)
	if r.err != nil {
		return r.err
	}
	for _, c := range r.rest() {
		if !unsubackCodes.has(ReasonCode(c)) {
			return errorf(ProtocolError, "UNSUBACK code 0x%02x is not allowed", c)
		}
		u.ReasonCodes = append(u.ReasonCodes, ReasonCode(c))
	}
	if len(u.ReasonCodes) == 0 {
		return errorf(ProtocolError, "UNSUBACK without a reason code")
	}
	return nil
}

// Append implements Packet. For v3 it ignores the codes and properties.
func (u *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	var z sizer
	if u.PacketID == 0 {
		z.fail("UNSUBACK needs a packet identifier")
	}
	z.n = 2
	var propLen int
	if v == V5 {
		if len(u.ReasonCodes) == 0 {
			z.fail("UNSUBACK needs a reason code")
		}
		for _, c := range u.ReasonCodes {
			if !unsubackCodes.has(c) {
				z.fail("UNSUBACK code %#x", byte(c))
			}
		}
		propLen = u.Properties.size(ackProps, "UNSUBACK", &z)
		z.n += varintLen(uint32(propLen)) + propLen + len(u.ReasonCodes)
	}
	n, err := z.finish(UNSUBACK)
	if err != nil {
		return dst, err
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, UNSUBACK, 0, n)
	dst = appendU16(dst, u.PacketID)
	if v == V5 {
		dst = u.Properties.append(dst, propLen)
		for _, c := range u.ReasonCodes {
			dst = append(dst, byte(c))
		}
	}
	return dst, nil
}
