package packet

import "strings"

// ValidateTopicName checks a PUBLISH topic name (MQTT 5 §4.7): at least one
// byte, at most 65535, well-formed UTF-8 without U+0000, no wildcard. The
// error's code is TopicNameInvalid.
func ValidateTopicName(name string) error { return validateTopicName(unsafeBytes(name)) }

func validateTopicName(name []byte) error {
	if len(name) == 0 {
		return errorf(TopicNameInvalid, "empty topic name")
	}
	if len(name) > 65535 {
		return errorf(TopicNameInvalid, "topic name longer than 65535 bytes")
	}
	for _, c := range name {
		if c == '+' || c == '#' {
			return errorf(TopicNameInvalid, "topic name %q contains a wildcard", name)
		}
	}
	if !validUTF8(name) {
		return errorf(TopicNameInvalid, "topic name is not well-formed UTF-8 or contains U+0000")
	}
	return nil
}

// Shared subscription prefixes: "$share/<group>/<filter>" (MQTT 5 §4.8.2)
// and BifroMQ's ordered share "$oshare/<group>/<filter>".
const (
	SharePrefix        = "$share/"
	OrderedSharePrefix = "$oshare/"
)

// ValidateTopicFilter checks a SUBSCRIBE or UNSUBSCRIBE topic filter (MQTT 5
// §4.7.1): at least one byte, at most 65535, well-formed UTF-8 without
// U+0000, '#' only as the whole last level, '+' only as a whole level. A
// shared filter needs a group name without '/', '+' or '#' and a non-empty
// filter after it. The error's code is TopicFilterInvalid.
func ValidateTopicFilter(filter string) error {
	if len(filter) > 65535 {
		return errorf(TopicFilterInvalid, "topic filter longer than 65535 bytes")
	}
	if !validUTF8(unsafeBytes(filter)) {
		return errorf(TopicFilterInvalid, "topic filter is not well-formed UTF-8 or contains U+0000")
	}
	f := filter
	for _, prefix := range [...]string{SharePrefix, OrderedSharePrefix} {
		if rest, ok := strings.CutPrefix(f, prefix); ok {
			group, sub, found := strings.Cut(rest, "/")
			if !found || group == "" {
				return errorf(TopicFilterInvalid, "shared subscription %q has no group name and filter", filter)
			}
			if strings.ContainsAny(group, "+#") {
				return errorf(TopicFilterInvalid, "shared subscription group %q contains a wildcard", group)
			}
			f = sub
			break
		}
	}
	if f == "" {
		return errorf(TopicFilterInvalid, "empty topic filter")
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '#':
			if i != len(f)-1 || (i > 0 && f[i-1] != '/') {
				return errorf(TopicFilterInvalid, "topic filter %q: '#' must be the whole last level", filter)
			}
		case '+':
			if (i > 0 && f[i-1] != '/') || (i < len(f)-1 && f[i+1] != '/') {
				return errorf(TopicFilterInvalid, "topic filter %q: '+' must be a whole level", filter)
			}
		}
	}
	return nil
}
