package packet

// Connect is a CONNECT packet (MQTT 5 §3.1).
type Connect struct {
	// ProtocolName is "MQTT" (3.1.1, 5.0) or "MQIsdp" (3.1) when decoded.
	// Append derives it from the version and ignores this field.
	ProtocolName string
	// Version is the protocol level the client asked for. Append writes
	// the version it is given and ignores this field.
	Version      Version
	CleanStart   bool // "clean session" in v3
	KeepAlive    uint16
	ClientID     string
	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
	WillFlag     bool
	Will         Will
	Properties   Properties // v5 only
}

// Will is the will message of a CONNECT.
type Will struct {
	QoS        QoS
	Retain     bool
	Topic      string
	Payload    []byte
	Properties Properties // v5 only
}

// Type implements Packet.
func (*Connect) Type() Type { return CONNECT }

const (
	connectReserved     = 0x01
	connectCleanStart   = 0x02
	connectWill         = 0x04
	connectWillQoSShift = 3
	connectWillRetain   = 0x20
	connectPassword     = 0x40
	connectUsername     = 0x80
)

// Unpack implements Packet. v is ignored: the packet names its own version.
// A CONNECT of an unknown protocol name or level fails with
// UnsupportedProtocolVersion, with ProtocolName and Version already set so
// the server can answer in the client's version.
func (c *Connect) Unpack(flags byte, body []byte, _ Version) error {
	if flags != 0 {
		return errorf(MalformedPacket, "CONNECT fixed header flags %#x are reserved", flags)
	}
	keepProps, keepWillProps := c.Properties, c.Will.Properties
	*c = Connect{}
	r := reader{b: body}
	c.ProtocolName = r.str("protocol name")
	c.Version = Version(r.u8("protocol level"))
	if r.err != nil {
		return r.err
	}
	switch {
	case c.ProtocolName == "MQTT" && (c.Version == V311 || c.Version == V5):
	case c.ProtocolName == "MQIsdp" && c.Version == V31:
	default:
		return errorf(UnsupportedProtocolVersion, "protocol %q level %d is not supported", c.ProtocolName, byte(c.Version))
	}
	f := r.u8("connect flags")
	c.KeepAlive = r.u16("keep alive")
	if r.err != nil {
		return r.err
	}
	if f&connectReserved != 0 {
		return errorf(MalformedPacket, "CONNECT reserved flag is set")
	}
	c.CleanStart = f&connectCleanStart != 0
	c.WillFlag = f&connectWill != 0
	c.Will.QoS = QoS(f >> connectWillQoSShift & 3)
	c.Will.Retain = f&connectWillRetain != 0
	c.PasswordFlag = f&connectPassword != 0
	c.UsernameFlag = f&connectUsername != 0
	if c.Will.QoS > ExactlyOnce {
		return errorf(MalformedPacket, "CONNECT will QoS 3")
	}
	if !c.WillFlag && (c.Will.QoS != 0 || c.Will.Retain) {
		return errorf(MalformedPacket, "CONNECT will QoS or retain set without the will flag")
	}
	if c.Version != V5 && c.PasswordFlag && !c.UsernameFlag {
		return errorf(MalformedPacket, "CONNECT password flag set without the user name flag")
	}
	c.Properties, c.Will.Properties = keepProps, keepWillProps
	if c.Version == V5 {
		c.Properties.unpack(&r, connectProps, "CONNECT", false)
		if r.err == nil && c.Properties.Has(PropAuthData) && !c.Properties.Has(PropAuthMethod) {
			r.fail(ProtocolError, "CONNECT authentication data without an authentication method")
		}
	} else {
		c.Properties.Reset()
	}
	c.Will.Properties.Reset()
	c.ClientID = r.str("client identifier")
	if c.WillFlag {
		if c.Version == V5 {
			c.Will.Properties.unpack(&r, willProps, "will", false)
		}
		topic := r.utf8Bytes("will topic")
		if r.err == nil {
			if err := validateTopicName(topic); err != nil {
				return err
			}
		}
		c.Will.Topic = string(topic)
		c.Will.Payload = r.binary("will payload")
	}
	if c.UsernameFlag {
		c.Username = r.str("user name")
	}
	if c.PasswordFlag {
		c.Password = r.binary("password")
	}
	r.done("CONNECT")
	return r.err
}

// Append implements Packet.
func (c *Connect) Append(dst []byte, v Version) ([]byte, error) {
	var s sizer
	name := "MQTT"
	switch v {
	case V31:
		name = "MQIsdp"
	case V311, V5:
	default:
		return dst, errorf(UnsupportedProtocolVersion, "cannot encode CONNECT for level %d", byte(v))
	}
	if c.Will.QoS > ExactlyOnce {
		s.fail("will QoS %d", c.Will.QoS)
	}
	if v != V5 && c.PasswordFlag && !c.UsernameFlag {
		s.fail("a password without a user name needs v5")
	}
	s.n = 2 + len(name) + 1 + 1 + 2
	var propLen, willPropLen int
	if v == V5 {
		propLen = c.Properties.size(connectProps, "CONNECT", &s)
		s.n += varintLen(uint32(propLen)) + propLen
	}
	s.str("client identifier", len(c.ClientID))
	if c.WillFlag {
		if v == V5 {
			willPropLen = c.Will.Properties.size(willProps, "will", &s)
			s.n += varintLen(uint32(willPropLen)) + willPropLen
		}
		s.str("will topic", len(c.Will.Topic))
		s.str("will payload", len(c.Will.Payload))
	}
	if c.UsernameFlag {
		s.str("user name", len(c.Username))
	}
	if c.PasswordFlag {
		s.str("password", len(c.Password))
	}
	n, err := s.finish(CONNECT)
	if err != nil {
		return dst, err
	}
	var f byte
	if c.CleanStart {
		f |= connectCleanStart
	}
	if c.WillFlag {
		f |= connectWill | byte(c.Will.QoS)<<connectWillQoSShift
		if c.Will.Retain {
			f |= connectWillRetain
		}
	}
	if c.PasswordFlag {
		f |= connectPassword
	}
	if c.UsernameFlag {
		f |= connectUsername
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, CONNECT, 0, n)
	dst = appendString(dst, name)
	dst = append(dst, byte(v), f)
	dst = appendU16(dst, c.KeepAlive)
	if v == V5 {
		dst = c.Properties.append(dst, propLen)
	}
	dst = appendString(dst, c.ClientID)
	if c.WillFlag {
		if v == V5 {
			dst = c.Will.Properties.append(dst, willPropLen)
		}
		dst = appendString(dst, c.Will.Topic)
		dst = appendBinary(dst, c.Will.Payload)
	}
	if c.UsernameFlag {
		dst = appendString(dst, c.Username)
	}
	if c.PasswordFlag {
		dst = appendBinary(dst, c.Password)
	}
	return dst, nil
}

// Connack is a CONNACK packet (MQTT 5 §3.2). For v3 the reason code is the
// v5 code of the return code's meaning (see the package doc).
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties // v5 only
}

// Type implements Packet.
func (*Connack) Type() Type { return CONNACK }

// Unpack implements Packet.
func (c *Connack) Unpack(flags byte, body []byte, v Version) error {
	if flags != 0 {
		return errorf(MalformedPacket, "CONNACK fixed header flags %#x are reserved", flags)
	}
	r := reader{b: body}
	ack := r.u8("acknowledge flags")
	code := r.u8("reason code")
	if r.err != nil {
		return r.err
	}
	if ack&^1 != 0 {
		return errorf(MalformedPacket, "CONNACK reserved acknowledge flags %#x", ack)
	}
	c.SessionPresent = ack == 1
	if v == V5 {
		c.ReasonCode = ReasonCode(code)
		if !connackCodes.has(c.ReasonCode) {
			return errorf(ProtocolError, "CONNACK reason code 0x%02x is not allowed", code)
		}
		c.Properties.unpack(&r, connackProps, "CONNACK", false)
	} else {
		if int(code) >= len(v3ConnackToV5) {
			return errorf(MalformedPacket, "CONNACK return code %d is reserved", code)
		}
		c.ReasonCode = v3ConnackToV5[code]
		c.Properties.Reset()
	}
	if r.err == nil && c.SessionPresent && c.ReasonCode != Success {
		return errorf(ProtocolError, "CONNACK session present with a failure code")
	}
	r.done("CONNACK")
	return r.err
}

// Append implements Packet. For v3 it ignores the properties.
func (c *Connack) Append(dst []byte, v Version) ([]byte, error) {
	var s sizer
	s.n = 2
	var propLen int
	if v == V5 {
		if !connackCodes.has(c.ReasonCode) {
			s.fail("CONNACK reason code %#x", byte(c.ReasonCode))
		}
		propLen = c.Properties.size(connackProps, "CONNACK", &s)
		s.n += varintLen(uint32(propLen)) + propLen
	}
	n, err := s.finish(CONNACK)
	if err != nil {
		return dst, err
	}
	var ack byte
	if c.SessionPresent && c.ReasonCode == Success {
		ack = 1
	}
	dst = grow(dst, 5+n)
	dst = appendHeader(dst, CONNACK, 0, n)
	if v == V5 {
		dst = append(dst, ack, byte(c.ReasonCode))
		return c.Properties.append(dst, propLen), nil
	}
	return append(dst, ack, V3ConnackCode(c.ReasonCode)), nil
}
