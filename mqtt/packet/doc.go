// Package packet encodes and decodes the MQTT control packets of MQTT 3.1
// (protocol name "MQIsdp", level 3), 3.1.1 (level 4) and 5.0 (level 5).
//
// # Contract
//
// Decoding is strict: every rule the specifications state for a receiver is
// checked (reserved flag bits, the variable byte integer limits, UTF-8
// strings without U+0000 or surrogates, topic name rules, packet identifier
// 0 where forbidden, duplicate properties, properties not allowed on a
// packet type, reason codes not allowed on a packet type, property values out
// of range). A failure is an *Error whose Code is the v5 reason code that
// describes it (MalformedPacket, ProtocolError, PacketTooLarge,
// TopicNameInvalid, TopicAliasInvalid, UnsupportedProtocolVersion), so that
// errors.Is(err, packet.MalformedPacket) works and a v5 server can put the
// code in its DISCONNECT. The decoder never panics on any input and never
// allocates more than the packet size limit the Reader was given.
//
// Topic filters are checked syntactically per filter by ValidateTopicFilter,
// not by Subscribe.Unpack, because a v5 server answers a bad filter with a
// per-filter SUBACK code rather than by closing the connection.
//
// # Memory
//
// Unpack decodes into an existing packet value and reuses its slices. The
// []byte fields it fills (Publish.Topic and Payload, Connect.Password, will
// payloads, correlation and authentication data) alias the body it was
// given: they are valid as long as the body is, and a caller that keeps them
// past the reuse of the body must copy them (Publish.Clone does). string
// fields are always copies. Decoding a PUBLISH without string properties into
// a reused Publish does not allocate.
//
// Append encodes a packet for a given version and appends it to a buffer,
// growing it only when its capacity is short; it fails, without appending,
// on a value that cannot be encoded (a property not allowed on the packet,
// a field the version lacks, a string over 65535 bytes).
//
// A v3 CONNACK return code, v3 SUBACK codes and the v5 reason codes share one
// type: a CONNACK decoded from v3 carries the v5 code of the same meaning
// (return code 1 becomes UnsupportedProtocolVersion, 2
// ClientIdentifierNotValid, 3 ServerUnavailable, 4 BadUserNameOrPassword,
// 5 NotAuthorized), and Append maps them back, so a v3 packet round-trips
// byte for byte.
//
// Reader is not safe for concurrent use; packet values are plain data and
// follow the usual rules for values shared between goroutines.
package packet
