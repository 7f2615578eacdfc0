package packet

// Puback is a PUBACK packet (MQTT 5 §3.4).
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Pubrec is a PUBREC packet (MQTT 5 §3.5).
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Pubrel is a PUBREL packet (MQTT 5 §3.6).
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Pubcomp is a PUBCOMP packet (MQTT 5 §3.7).
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Type implements Packet.
func (*Puback) Type() Type { return PUBACK }

// Type implements Packet.
func (*Pubrec) Type() Type { return PUBREC }

// Type implements Packet.
func (*Pubrel) Type() Type { return PUBREL }

// Type implements Packet.
func (*Pubcomp) Type() Type { return PUBCOMP }

// Unpack implements Packet.
func (a *Puback) Unpack(flags byte, body []byte, v Version) error {
	return unpackAck(PUBACK, 0, &pubackCodes, flags, body, v, &a.PacketID, &a.ReasonCode, &a.Properties)
}

// Unpack implements Packet.
func (a *Pubrec) Unpack(flags byte, body []byte, v Version) error {
	return unpackAck(PUBREC, 0, &pubackCodes, flags, body, v, &a.PacketID, &a.ReasonCode, &a.Properties)
}

// Unpack implements Packet.
func (a *Pubrel) Unpack(flags byte, body []byte, v Version) error {
	return unpackAck(PUBREL, 2, &pubrelCodes, flags, body, v, &a.PacketID, &a.ReasonCode, &a.Properties)
}

// Unpack implements Packet.
func (a *Pubcomp) Unpack(flags byte, body []byte, v Version) error {
	return unpackAck(PUBCOMP, 0, &pubrelCodes, flags, body, v, &a.PacketID, &a.ReasonCode, &a.Properties)
}

// Append implements Packet. For v3 it ignores the reason code and properties.
func (a *Puback) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBACK, 0, &pubackCodes, v, a.PacketID, a.ReasonCode, &a.Properties)
}

// Append implements Packet. For v3 it ignores the reason code and properties.
func (a *Pubrec) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBREC, 0, &pubackCodes, v, a.PacketID, a.ReasonCode, &a.Properties)
}

// Append implements Packet. For v3 it ignores the reason code and properties.
func (a *Pubrel) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBREL, 2, &pubrelCodes, v, a.PacketID, a.ReasonCode, &a.Properties)
}

// Append implements Packet. For v3 it ignores the reason code and properties.
func (a *Pubcomp) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBCOMP, 0, &pubrelCodes, v, a.PacketID, a.ReasonCode, &a.Properties)
}

// unpackAck decodes the four publish acknowledgements, which share a
// layout: packet id, then in v5 an optional reason code (absent means
// success) and optional properties.
func unpackAck(t Type, wantFlags byte, codes *codeSet, flags byte, body []byte, v Version,
	id *uint16, code *ReasonCode, props *Properties) error {
	if flags != wantFlags {
		return errorf(MalformedPacket, "%s fixed header flags %#x, want %#x", t, flags, wantFlags)
	}
	r := reader{b: body}
	*id = r.u16("packet identifier")
	*code = Success
	props.Reset()
	if r.err != nil {
		return r.err
	}
	if *id == 0 {
		return errorf(ProtocolError, "%s with packet identifier 0", t)
	}
	if v == V5 && r.left() > 0 {
		*code = ReasonCode(r.u8("reason code"))
		if !codes.has(*code) {
			return errorf(ProtocolError, "%s reason code 0x%02x is not allowed", t, byte(*code))
		}
		if r.left() > 0 {
			props.unpack(&r, ackProps, t.String(), false)
		}
	}
	r.done(t.String())
	return r.err
}

func appendAck(dst []byte, t Type, flags byte, codes *codeSet, v Version,
	id uint16, code ReasonCode, props *Properties) ([]byte, error) {
	var s sizer
	if id == 0 {
		s.fail("%s needs a packet identifier", t)
	}
	s.n = 2
	propLen := 0
	if v == V5 {
		if !codes.has(code) {
			s.fail("%s reason code %#x", t, byte(code))
		}
		propLen = props.size(ackProps, t.String(), &s)
		switch {
		case propLen > 0:
			s.n += 1 + varintLen(uint32(propLen)) + propLen
		case code != Success:
			s.n++
		}
	}
	n, err := s.finish(t)
	if err != nil {
		return dst, err
	}
	dst = grow(dst, 2+n)
	dst = appendHeader(dst, t, flags, n)
	dst = appendU16(dst, id)
	if n > 2 {
		dst = append(dst, byte(code))
	}
	if n > 3 {
		dst = props.append(dst, propLen)
	}
	return dst, nil
}
