package settings

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultsValid(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesEveryField(t *testing.T) {
	s := Settings{MaximumQoS: 3, InBoundBandWidth: -1}
	err := s.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%v", err)
	}
	for _, f := range []string{"maximumQoS", "maxTopicLevels", "receivingMaximum", "sessionInboxSize",
		"maxSessionExpirySeconds", "inBoundBandWidth", "at least one version"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("no problem names %s: %v", f, err)
		}
	}
}

func TestStatic(t *testing.T) {
	d := Defaults()
	acme := Defaults()
	acme.MaximumQoS = 1
	s, err := NewStatic(d, map[string]Settings{"acme": acme})
	if err != nil {
		t.Fatal(err)
	}
	if s.For("acme").MaximumQoS != 1 || s.For("other").MaximumQoS != 2 {
		t.Fatal("For")
	}
	bad := Defaults()
	bad.MaxTopicLevels = 0
	if err := s.Set("x", bad); err == nil {
		t.Fatal("Set accepted invalid settings")
	}
	acme.MsgPubPerSec = 5
	if err := s.Set("acme", acme); err != nil || s.For("acme").MsgPubPerSec != 5 {
		t.Fatalf("Set: %v", err)
	}
	s.Delete("acme")
	if s.For("acme").MaximumQoS != 2 || len(s.Tenants()) != 0 {
		t.Fatal("Delete")
	}
	if _, err := NewStatic(d, map[string]Settings{"bad": bad}); err == nil || !strings.Contains(err.Error(), `tenant "bad"`) {
		t.Fatalf("NewStatic: %v", err)
	}
}
