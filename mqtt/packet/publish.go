package packet

// Publish is a PUBLISH packet (MQTT 5 §3.3). Topic and Payload alias the
// decoded body (see the package doc); Clone detaches them.
type Publish struct {
	Dup        bool
	QoS        QoS
	Retain     bool
	Topic      []byte // empty in v5 when a topic alias stands for it
	PacketID   uint16 // QoS 1 and 2 only
	Properties Properties
	Payload    []byte
}

// Type implements Packet.
func (*Publish) Type() Type { return PUBLISH }

// Unpack implements Packet. It does not allocate unless the packet carries
// string properties or more subscription identifiers or user properties than
// p's slices hold.
func (p *Publish) Unpack(flags byte, body []byte, v Version) error {
	p.Dup = flags&0x08 != 0
	p.QoS = QoS(flags >> 1 & 3)
	p.Retain = flags&0x01 != 0
	p.Topic, p.Payload, p.PacketID = nil, nil, 0
	if p.QoS > ExactlyOnce {
		return errorf(MalformedPacket, "PUBLISH QoS 3")
	}
	if p.Dup && p.QoS == AtMostOnce {
		return errorf(MalformedPacket, "PUBLISH DUP set on QoS 0")
	}
	r := reader{b: body}
	p.Topic = r.utf8Bytes("topic name")
	if r.err != nil {
		return r.err
	}
	for _, c := range p.Topic {
		if c == '+' || c == '#' {
			return errorf(TopicNameInvalid, "PUBLISH topic name contains a wildcard")
		}
	}
	if p.QoS > AtMostOnce {
		p.PacketID = r.u16("packet identifier")
		if r.err == nil && p.PacketID == 0 {
			return errorf(ProtocolError, "PUBLISH QoS %d with packet identifier 0", p.QoS)
		}
	}
	if v == V5 {
		p.Properties.unpack(&r, publishProps, "PUBLISH", true)
	} else {
		p.Properties.Reset()
	}
	if r.err != nil {
		return r.err
	}
	if len(p.Topic) == 0 && !(v == V5 && p.Properties.TopicAlias != 0) {
		return errorf(ProtocolError, "PUBLISH with an empty topic name and no topic alias")
	}
	p.Payload = r.rest()
	return nil
}

// Append implements Packet. For v3 it ignores the properties.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	var s sizer
	if p.QoS > ExactlyOnce {
		s.fail("PUBLISH QoS %d", p.QoS)
	}
	if p.QoS > AtMostOnce && p.PacketID == 0 {
		s.fail("PUBLISH QoS %d needs a packet identifier", p.QoS)
	}
	if p.Dup && p.QoS == AtMostOnce {
		s.fail("PUBLISH DUP on QoS 0")
	}
	if len(p.Topic) == 0 && (v != V5 || p.Properties.TopicAlias == 0) {
		s.fail("PUBLISH without a topic name")
	}
	s.str("topic name", len(p.Topic))
	if p.QoS > AtMostOnce {
		s.n += 2
	}
	var propLen int
	if v == V5 {
		propLen = p.Properties.size(publishProps, "PUBLISH", &s)
		s.n += varintLen(uint32(propLen)) + propLen
	}
	s.n += len(p.Payload)
	n, err := s.finish(PUBLISH)
	if err != nil {
		return dst, err
	}
	flags := byte(p.QoS) << 1
	if p.Dup {
		flags |= 0x08
	}
	if p.Retain {
		flags |= 0x01
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, PUBLISH, flags, n)
	dst = appendU16(dst, uint16(len(p.Topic)))
	dst = append(dst, p.Topic...)
	if p.QoS > AtMostOnce {
		dst = appendU16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Properties.append(dst, propLen)
	}
	return append(dst, p.Payload...), nil
}

// Clone returns a copy of p that shares no memory with it. Topic, Payload
// and correlation data share one allocation.
func (p *Publish) Clone() *Publish {
	c := *p
	corr := p.Properties.CorrelationData
	buf := make([]byte, 0, len(p.Topic)+len(p.Payload)+len(corr))
	buf = append(buf, p.Topic...)
	buf = append(buf, p.Payload...)
	buf = append(buf, corr...)
	c.Topic = buf[:len(p.Topic):len(p.Topic)]
	c.Payload = buf[len(p.Topic) : len(p.Topic)+len(p.Payload) : len(p.Topic)+len(p.Payload)]
	c.Properties = p.Properties.Clone()
	if corr != nil {
		c.Properties.CorrelationData = buf[len(p.Topic)+len(p.Payload):]
	}
	return &c
}
