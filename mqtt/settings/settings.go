// Package settings holds the per-tenant settings of the MQTT frontend
// (BifroMQ's tenant settings): defaults, per-tenant overrides, and changes
// at runtime. A Provider answers For(tenant) with the settings in force;
// the frontend reads them when a client connects, so a change applies to
// the tenant's next connections.
package settings

import (
	"errors"
	"fmt"
	"maps"
	"sync"
)

// Settings are one tenant's settings. Zero means "unlimited" for the
// rate and bandwidth limits only; every other field has a default
// (Defaults) and a valid range (Validate).
type Settings struct {
	// Protocol versions the tenant may use: 3.1, 3.1.1, 5.0.
	MQTT3Enabled bool `yaml:"mqtt3Enabled" json:"mqtt3Enabled"`
	MQTT4Enabled bool `yaml:"mqtt4Enabled" json:"mqtt4Enabled"`
	MQTT5Enabled bool `yaml:"mqtt5Enabled" json:"mqtt5Enabled"`
	// Feature switches.
	RetainEnabled                 bool `yaml:"retainEnabled" json:"retainEnabled"`
	WildcardSubscriptionEnabled   bool `yaml:"wildcardSubscriptionEnabled" json:"wildcardSubscriptionEnabled"`
	SharedSubscriptionEnabled     bool `yaml:"sharedSubscriptionEnabled" json:"sharedSubscriptionEnabled"`
	SubscriptionIdentifierEnabled bool `yaml:"subscriptionIdentifierEnabled" json:"subscriptionIdentifierEnabled"`

	MaximumQoS          byte   `yaml:"maximumQoS" json:"maximumQoS"`                   // 0, 1 or 2
	MaxTopicLevels      int    `yaml:"maxTopicLevels" json:"maxTopicLevels"`           // levels of a topic or filter
	MaxTopicLength      int    `yaml:"maxTopicLength" json:"maxTopicLength"`           // bytes of a topic or filter
	MaxTopicLevelLength int    `yaml:"maxTopicLevelLength" json:"maxTopicLevelLength"` // bytes of one level
	MaxTopicAlias       uint16 `yaml:"maxTopicAlias" json:"maxTopicAlias"`             // inbound topic aliases (v5); 0 none
	ReceivingMaximum    uint16 `yaml:"receivingMaximum" json:"receivingMaximum"`       // inbound QoS 1/2 in flight
	MaxUserPayloadBytes int    `yaml:"maxUserPayloadBytes" json:"maxUserPayloadBytes"`
	MaxLastWillBytes    int    `yaml:"maxLastWillBytes" json:"maxLastWillBytes"` // will payload

	MaxSessionExpirySeconds uint32 `yaml:"maxSessionExpirySeconds" json:"maxSessionExpirySeconds"`
	SessionInboxSize        uint32 `yaml:"sessionInboxSize" json:"sessionInboxSize"` // each persistent-session queue
	QoS0DropOldest          bool   `yaml:"qos0DropOldest" json:"qos0DropOldest"`
	MaxTopicFiltersPerInbox int    `yaml:"maxTopicFiltersPerInbox" json:"maxTopicFiltersPerInbox"`
	MaxTopicFiltersPerSub   int    `yaml:"maxTopicFiltersPerSub" json:"maxTopicFiltersPerSub"` // filters in one SUBSCRIBE
	MaxSharedGroupMembers   int    `yaml:"maxSharedGroupMembers" json:"maxSharedGroupMembers"`
	RetainMessageMatchLimit int    `yaml:"retainMessageMatchLimit" json:"retainMessageMatchLimit"`

	MsgPubPerSec      int   `yaml:"msgPubPerSec" json:"msgPubPerSec"`           // per connection; 0 unlimited
	InBoundBandWidth  int64 `yaml:"inBoundBandWidth" json:"inBoundBandWidth"`   // bytes/s per connection; 0 unlimited
	OutBoundBandWidth int64 `yaml:"outBoundBandWidth" json:"outBoundBandWidth"` // bytes/s per connection; 0 unlimited
}

// Defaults are BifroMQ's defaults.
func Defaults() Settings {
	return Settings{
		MQTT3Enabled: true, MQTT4Enabled: true, MQTT5Enabled: true,
		RetainEnabled: true, WildcardSubscriptionEnabled: true, SharedSubscriptionEnabled: true,
		SubscriptionIdentifierEnabled: true,
		MaximumQoS:                    2,
		MaxTopicLevels:                16,
		MaxTopicLength:                255,
		MaxTopicLevelLength:           40,
		MaxTopicAlias:                 10,
		ReceivingMaximum:              200,
		MaxUserPayloadBytes:           256 * 1024,
		MaxLastWillBytes:              128 * 1024,
		MaxSessionExpirySeconds:       86400,
		SessionInboxSize:              1000,
		MaxTopicFiltersPerInbox:       100,
		MaxTopicFiltersPerSub:         10,
		MaxSharedGroupMembers:         200,
		RetainMessageMatchLimit:       10,
	}
}

// ErrInvalid is wrapped by Validate's errors.
var ErrInvalid = errors.New("settings: invalid")

// Validate reports every field out of range, by its YAML name.
func (s *Settings) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("%w: %s: %v is %s", ErrInvalid, field, v, want))
	}
	if s.MaximumQoS > 2 {
		bad("maximumQoS", s.MaximumQoS, "not 0, 1 or 2")
	}
	for _, f := range []struct {
		name   string
		v, min int
		max    int
	}{
		{"maxTopicLevels", s.MaxTopicLevels, 1, 1 << 16},
		{"maxTopicLength", s.MaxTopicLength, 1, 65535},
		{"maxTopicLevelLength", s.MaxTopicLevelLength, 1, 65535},
		{"receivingMaximum", int(s.ReceivingMaximum), 1, 65535},
		{"maxUserPayloadBytes", s.MaxUserPayloadBytes, 0, 268435455},
		{"maxLastWillBytes", s.MaxLastWillBytes, 0, 268435455},
		{"sessionInboxSize", int(s.SessionInboxSize), 1, 1 << 30},
		{"maxTopicFiltersPerInbox", s.MaxTopicFiltersPerInbox, 1, 1 << 20},
		{"maxTopicFiltersPerSub", s.MaxTopicFiltersPerSub, 1, 1 << 16},
		{"maxSharedGroupMembers", s.MaxSharedGroupMembers, 1, 1 << 30},
		{"retainMessageMatchLimit", s.RetainMessageMatchLimit, 1, 1 << 20},
		{"msgPubPerSec", s.MsgPubPerSec, 0, 1 << 30},
	} {
		if f.v < f.min || f.v > f.max {
			bad(f.name, f.v, fmt.Sprintf("outside [%d, %d]", f.min, f.max))
		}
	}
	if s.MaxSessionExpirySeconds == 0 {
		bad("maxSessionExpirySeconds", 0, "not positive")
	}
	if s.InBoundBandWidth < 0 {
		bad("inBoundBandWidth", s.InBoundBandWidth, "negative")
	}
	if s.OutBoundBandWidth < 0 {
		bad("outBoundBandWidth", s.OutBoundBandWidth, "negative")
	}
	if !s.MQTT3Enabled && !s.MQTT4Enabled && !s.MQTT5Enabled {
		errs = append(errs, fmt.Errorf("%w: mqtt3Enabled, mqtt4Enabled, mqtt5Enabled: at least one version must be enabled", ErrInvalid))
	}
	return errors.Join(errs...)
}

// Provider answers a tenant's settings. For is called on every CONNECT,
// concurrently; the result must not be modified.
type Provider interface {
	For(tenant string) *Settings
}

// Static is a Provider from defaults and per-tenant settings, changeable
// at runtime (the HTTP API's tenant settings endpoints use Set and
// Delete). Safe for concurrent use.
type Static struct {
	mu       sync.RWMutex
	defaults *Settings
	tenants  map[string]*Settings
}

// NewStatic checks the defaults and every tenant's settings and returns
// the provider.
func NewStatic(defaults Settings, tenants map[string]Settings) (*Static, error) {
	var errs []error
	if err := defaults.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("defaults: %w", err))
	}
	s := &Static{defaults: &defaults, tenants: make(map[string]*Settings)}
	for t, v := range tenants {
		if err := v.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", t, err))
		}
		s.tenants[t] = &v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// For implements Provider.
func (s *Static) For(tenant string) *Settings {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v := s.tenants[tenant]; v != nil {
		return v
	}
	return s.defaults
}

// Set replaces a tenant's settings (after Validate).
func (s *Static) Set(tenant string, v Settings) error {
	if err := v.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.tenants[tenant] = &v
	s.mu.Unlock()
	return nil
}

// Delete returns a tenant to the defaults.
func (s *Static) Delete(tenant string) {
	s.mu.Lock()
	delete(s.tenants, tenant)
	s.mu.Unlock()
}

// Tenants returns the tenants with their own settings.
func (s *Static) Tenants() map[string]Settings {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]Settings, len(s.tenants))
	for t, v := range maps.All(s.tenants) {
		out[t] = *v
	}
	return out
}
