package standalone

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// LoadConfig returns DefaultConfig overlaid with the YAML file at path: keys
// the file leaves out keep their defaults. Unknown keys, values of the wrong
// type and YAML syntax errors are reported together as a *ConfigError, each
// naming the file, line and YAML path. LoadConfig does not Validate.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, &ConfigError{Problems: []string{fmt.Sprintf("reading config file: %v", err)}}
	}
	if err := decodeConfig(path, data, &c); err != nil {
		return c, err
	}
	return c, nil
}

// decodeConfig overlays the YAML document in data (named name in errors)
// onto c.
func decodeConfig(name string, data []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: the defaults
		}
		return &ConfigError{Problems: yamlProblems(name, err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil // only comments
	}
	if root.Kind != yaml.MappingNode {
		return &ConfigError{Problems: []string{fmt.Sprintf("%s:%d: the document must be a mapping of keys", name, root.Line)}}
	}

	// A first pass names every unknown key and every ill-typed value by its
	// YAML path; the decoder would name neither by path, and stop at the
	// first unknown key.
	var p problems
	checkNode(&p, name, "", root, reflect.TypeOf(*c))
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil { // not expected after checkNode
		return &ConfigError{Problems: yamlProblems(name, err)}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// checkNode checks the mapping n against struct type t: every key must be a
// field, and every value must decode into its field's type. path is the
// YAML path of n ("" at the top).
func checkNode(p *problems, file, path string, n *yaml.Node, t reflect.Type) {
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" {
			continue // a merge key; the decoder checks what it merges
		}
		kpath := k.Value
		if path != "" {
			kpath = path + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			msg := "unknown key"
			if s := suggest(k.Value, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			p.add(fmt.Sprintf("%s:%d: %s", file, k.Line, kpath), "%s", msg)
			continue
		}
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if f.Kind() == reflect.Struct && f != durationType && v.Kind == yaml.MappingNode {
			checkNode(p, file, kpath, v, f)
			continue
		}
		if err := v.Decode(reflect.New(f).Interface()); err != nil {
			for _, msg := range yamlMessages(err) {
				if f == durationType {
					msg += ` (want a duration such as "10s")`
				}
				p.add(fmt.Sprintf("%s:%d: %s", file, v.Line, kpath), "%s", msg)
			}
		}
	}
}

// yamlFields maps the YAML keys of struct type t to their field types,
// flattening ",inline" fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// suggest returns the known key closest to an unknown one, or "".
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestDist := "", 3 // suggest only within an edit distance of 2
	for k := range fields {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(key)); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlLine matches the "line N: " the decoder puts before each message.
var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlMessages returns the messages of a decoding error without the
// decoder's prefixes and line numbers (the caller knows the line).
func yamlMessages(err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		msgs[i] = yamlLine.ReplaceAllString(e, "")
	}
	return msgs
}

// yamlProblems turns a decoding error of file into problems, each starting
// "file:line: ".
func yamlProblems(file string, err error) []string {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	probs := make([]string, len(msgs))
	for i, m := range msgs {
		if loc := yamlLine.FindStringSubmatchIndex(m); loc != nil {
			probs[i] = file + ":" + m[loc[2]:loc[3]] + ": " + m[loc[1]:]
		} else {
			probs[i] = file + ": " + m
		}
	}
	return probs
}
