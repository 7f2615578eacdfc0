package packet

// Pingreq is a PINGREQ packet (MQTT 5 §3.12).
type Pingreq struct{}

// Pingresp is a PINGRESP packet (MQTT 5 §3.13).
type Pingresp struct{}

// Type implements Packet.
func (*Pingreq) Type() Type { return PINGREQ }

// Type implements Packet.
func (*Pingresp) Type() Type { return PINGRESP }

// Unpack implements Packet.
func (*Pingreq) Unpack(flags byte, body []byte, _ Version) error {
	return unpackEmpty(PINGREQ, flags, body)
}

// Unpack implements Packet.
func (*Pingresp) Unpack(flags byte, body []byte, _ Version) error {
	return unpackEmpty(PINGRESP, flags, body)
}

// Append implements Packet.
func (*Pingreq) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// Append implements Packet.
func (*Pingresp) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

func unpackEmpty(t Type, flags byte, body []byte) error {
	if flags != 0 {
		return errorf(MalformedPacket, "%s fixed header flags %#x are reserved", t, flags)
	}
	if len(body) != 0 {
		return errorf(MalformedPacket, "%s with a remaining length of %d", t, len(body))
	}
	return nil
}

// Disconnect is a DISCONNECT packet (MQTT 5 §3.14). v3 carries nothing.
type Disconnect struct {
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Type implements Packet.
func (*Disconnect) Type() Type { return DISCONNECT }

// Unpack implements Packet.
func (d *Disconnect) Unpack(flags byte, body []byte, v Version) error {
	d.ReasonCode = NormalDisconnection
	d.Properties.Reset()
	if v != V5 {
		return unpackEmpty(DISCONNECT, flags, body)
	}
	return unpackCodeProps(DISCONNECT, &disconnectCodes, disconnectProps, flags, body,
		&d.ReasonCode, &d.Properties, true)
}

// Append implements Packet. For v3 it ignores the code and properties.
func (d *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return append(dst, byte(DISCONNECT)<<4, 0), nil
	}
	return appendCodeProps(dst, DISCONNECT, &disconnectCodes, disconnectProps, d.ReasonCode, &d.Properties, true)
}

// Auth is an AUTH packet (MQTT 5 §3.15); it exists only in v5.
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type implements Packet.
func (*Auth) Type() Type { return AUTH }

// Unpack implements Packet.
func (a *Auth) Unpack(flags byte, body []byte, v Version) error {
	a.ReasonCode = Success
	a.Properties.Reset()
	if v != V5 {
		return errorf(MalformedPacket, "AUTH is reserved before v5")
	}
	return unpackCodeProps(AUTH, &authCodes, authProps, flags, body, &a.ReasonCode, &a.Properties, false)
}

// Append implements Packet.
func (a *Auth) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, errorf(ProtocolError, "cannot encode: AUTH needs v5")
	}
	return appendCodeProps(dst, AUTH, &authCodes, authProps, a.ReasonCode, &a.Properties, false)
}

// unpackCodeProps decodes the v5 DISCONNECT and AUTH layout: empty (success),
// a reason code alone (DISCONNECT only, when codeAlone), or a reason code
// and properties.
func unpackCodeProps(t Type, codes *codeSet, allowed propSet, flags byte, body []byte,
	code *ReasonCode, p *Properties, codeAlone bool) error {
	if flags != 0 {
		return errorf(MalformedPacket, "%s fixed header flags %#x are reserved", t, flags)
	}
	if len(body) == 0 {
		return nil
	}
	r := reader{b: body}
	*code = ReasonCode(r.u8("reason code"))
	if !codes.has(*code) {
		return errorf(ProtocolError, "%s reason code 0x%02x is not allowed", t, byte(*code))
	}
	if r.left() == 0 && !codeAlone {
		return errorf(MalformedPacket, "%s reason code without a property length", t)
	}
	if r.left() > 0 {
		p.unpack(&r, allowed, t.String(), false)
	}
	r.done(t.String())
	return r.err
}

func appendCodeProps(dst []byte, t Type, codes *codeSet, allowed propSet, code ReasonCode,
	p *Properties, codeAlone bool) ([]byte, error) {
	var s sizer
	if !codes.has(code) {
		s.fail("%s reason code %#x", t, byte(code))
	}
	propLen := p.size(allowed, t.String(), &s)
	switch {
	case propLen > 0 || (code != Success && !codeAlone):
		s.n = 1 + varintLen(uint32(propLen)) + propLen
	case code != Success:
		s.n = 1
	}
	n, err := s.finish(t)
	if err != nil {
		return dst, err
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, t, 0, n)
	if n > 0 {
		dst = append(dst, byte(code))
	}
	if n > 1 {
		dst = p.append(dst, propLen)
	}
	return dst, nil
}
