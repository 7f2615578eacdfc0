package standalone

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewLogger("warn", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("json log %q: %v", buf.String(), err)
	}
	if m["msg"] != "shown" || m["level"] != "WARN" {
		t.Errorf("logged %v", m)
	}

	buf.Reset()
	l, err = NewLogger("debug", "text", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hello", "k", "v")
	if !strings.Contains(buf.String(), "level=DEBUG msg=hello k=v") {
		t.Errorf("text log %q", buf.String())
	}

	if _, err := NewLogger("loud", "text", &buf); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := NewLogger("info", "xml", &buf); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("bad format: %v", err)
	}
}
