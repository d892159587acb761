// Package config loads a role's configuration (origin, edge) into a struct in
// a fixed order, each source overriding the one before:
//
//  1. defaults: the caller passes a pointer to a struct already filled in;
//  2. a YAML file, when Source.File is set;
//  3. environment variables, when Source.EnvPrefix is set;
//  4. command-line flags the user actually set, for names in Source.FlagKeys.
//
// The caller validates the result. Keys are the struct's `yaml` tags (the
// lower-cased field name when a field has none); a nested struct is a nested
// mapping, and its keys are written as a dotted path such as
// "segmenter.part_duration". The environment variable for a key is
// EnvPrefix followed by the upper-snake form of its path
// (AMPHI_SEGMENTER_PART_DURATION).
//
// Leaf fields may be string, bool, any int or uint kind, float32/64,
// time.Duration, []string, or any type whose pointer implements
// encoding.TextUnmarshaler. In the environment and in flags a []string is
// written comma-separated; in YAML it is a sequence.
package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Source says where Load reads values from, besides the defaults already in
// the destination struct.
type Source struct {
	// File is an optional YAML file. Unknown keys are an error; an empty
	// file (or one holding only comments) changes nothing.
	File string
	// EnvPrefix, such as "AMPHI_", turns on the environment. Empty: the
	// environment is not read.
	EnvPrefix string
	// Environ is the environment as KEY=VALUE lines; nil means os.Environ().
	// A variable that is present but empty sets its key to the empty value.
	Environ []string
	// Flags is the optional parsed command line. Only flags named in FlagKeys
	// and changed by the user (Flags.Changed) are applied.
	Flags *pflag.FlagSet
	// FlagKeys maps a flag name to a key path, e.g. "preset" to
	// "segmenter.preset".
	FlagKeys map[string]string
}

// Load fills dst, a non-nil pointer to a struct holding the defaults, from
// src. Errors name the file and line, the environment variable, or the flag
// at fault; on error dst is unchanged.
func Load(dst any, src Source) error {
	out, err := structValue(dst)
	if err != nil {
		return err
	}
	// Work on a copy so that dst is left as it was when loading fails.
	root := reflect.New(out.Type()).Elem()
	root.Set(out)
	leaves, err := collect(root)
	if err != nil {
		return err
	}
	if src.File != "" {
		data, err := os.ReadFile(src.File)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := decodeYAML(root, src.File, data); err != nil {
			return err
		}
	}
	if src.EnvPrefix != "" {
		env := src.Environ
		if env == nil {
			env = os.Environ()
		}
		if err := applyEnv(leaves, src.EnvPrefix, env); err != nil {
			return err
		}
	}
	if src.Flags != nil {
		if err := applyFlags(leaves, src.Flags, src.FlagKeys); err != nil {
			return err
		}
	}
	out.Set(root)
	return nil
}

// Keys returns every leaf key path of dst (a struct or a pointer to one),
// sorted. It returns nil for anything else.
func Keys(dst any) []string {
	v := reflect.ValueOf(dst)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	// Walk an addressable copy so that pointer-receiver TextUnmarshalers
	// are recognised even when dst was passed by value.
	c := reflect.New(v.Type()).Elem()
	leaves, _ := collect(c)
	keys := make([]string, 0, len(leaves))
	for _, l := range leaves {
		keys = append(keys, l.path)
	}
	sort.Strings(keys)
	return keys
}

// EnvName returns the environment variable for a key path:
// EnvName("AMPHI_", "segmenter.part_duration") is
// "AMPHI_SEGMENTER_PART_DURATION".
func EnvName(prefix, path string) string {
	return prefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

func structValue(dst any) (reflect.Value, error) {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("config: Load needs a non-nil pointer to a struct, not %T", dst)
	}
	return v.Elem(), nil
}

// leaf is a settable field and its dotted key path.
type leaf struct {
	path string
	v    reflect.Value
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// fieldKey is the YAML key of a struct field, or "" when the field is not
// part of the configuration (unexported, or tagged "-").
func fieldKey(sf reflect.StructField) string {
	if !sf.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(sf.Name)
	}
	return name
}

func isText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// isBranch reports whether t is a nested mapping rather than a leaf.
func isBranch(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !isText(t)
}

func supported(t reflect.Type) bool {
	if isText(t) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem() == reflect.TypeFor[string]()
	}
	return false
}

// collect lists the leaves of the struct v, depth first.
func collect(v reflect.Value) ([]leaf, error) {
	var out []leaf
	var walk func(v reflect.Value, prefix string) error
	walk = func(v reflect.Value, prefix string) error {
		t := v.Type()
		for i := range t.NumField() {
			key := fieldKey(t.Field(i))
			if key == "" {
				continue
			}
			path := prefix + key
			f := v.Field(i)
			switch {
			case isBranch(f.Type()):
				if err := walk(f, path+"."); err != nil {
					return err
				}
			case supported(f.Type()):
				out = append(out, leaf{path, f})
			default:
				return fmt.Errorf("config: key %s: unsupported field type %s", path, f.Type())
			}
		}
		return nil
	}
	return out, walk(v, "")
}

// decodeYAML applies the YAML document data, read from file, to the struct v.
func decodeYAML(v reflect.Value, file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file
		}
		return fmt.Errorf("config file %s: %w", file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("config file %s: %w", file, err)
		}
		return fmt.Errorf("%s:%d: more than one YAML document", file, extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	return decodeStruct(v, file, root, "")
}

// isNull reports whether n is an empty or null scalar ("", "~", "null").
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// decodeStruct applies the mapping n to the struct v; prefix is v's key
// path with a trailing dot ("" at the top). Unknown and repeated keys are
// errors, as with yaml.v3's Decoder.KnownFields(true).
func decodeStruct(v reflect.Value, file string, n *yaml.Node, prefix string) error {
	n = resolveAlias(n)
	if isNull(n) {
		return nil // "segmenter:" with nothing under it keeps the defaults
	}
	if n.Kind != yaml.MappingNode {
		what := "the top level"
		if prefix != "" {
			what = "key " + strings.TrimSuffix(prefix, ".")
		}
		return fmt.Errorf("%s:%d: %s must be a mapping of keys", file, n.Line, what)
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	var names []string
	for i := range t.NumField() {
		if key := fieldKey(t.Field(i)); key != "" {
			fields[key] = i
			names = append(names, key)
		}
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s:%d: keys must be plain names", file, kn.Line)
		}
		path := prefix + kn.Value
		idx, ok := fields[kn.Value]
		if !ok {
			return fmt.Errorf("%s:%d: unknown key %q (known keys here: %s)", file, kn.Line, path, strings.Join(names, ", "))
		}
		if seen[kn.Value] {
			return fmt.Errorf("%s:%d: key %q appears twice", file, kn.Line, path)
		}
		seen[kn.Value] = true
		f := v.Field(idx)
		if isBranch(f.Type()) {
			if err := decodeStruct(f, file, vn, path+"."); err != nil {
				return err
			}
			continue
		}
		if err := vn.Decode(f.Addr().Interface()); err != nil {
			return fmt.Errorf("%s:%d: %s: %s", file, vn.Line, path, yamlMessage(err))
		}
	}
	return nil
}

// yamlMessage shortens a yaml.v3 decoding error to its first message, without
// the "yaml: unmarshal errors:" and "line N:" decoration (the caller names
// the line).
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if _, after, ok := strings.Cut(rest, ": "); ok {
				msg = after
			}
		}
		return msg
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

func applyEnv(leaves []leaf, prefix string, environ []string) error {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if _, dup := env[k]; !dup { // the first one wins, as with os.Getenv
			env[k] = v
		}
	}
	for _, l := range leaves {
		name := EnvName(prefix, l.path)
		s, ok := env[name]
		if !ok {
			continue
		}
		if err := setString(l.v, s); err != nil {
			return fmt.Errorf("environment variable %s (key %s): %w", name, l.path, err)
		}
	}
	return nil
}

func applyFlags(leaves []leaf, fs *pflag.FlagSet, keys map[string]string) error {
	byPath := make(map[string]reflect.Value, len(leaves))
	for _, l := range leaves {
		byPath[l.path] = l.v
	}
	names := make([]string, 0, len(keys))
	for name := range keys {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic errors
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			return fmt.Errorf("config: flag --%s is not defined", name)
		}
		v, ok := byPath[keys[name]]
		if !ok {
			return fmt.Errorf("config: flag --%s maps to unknown key %q", name, keys[name])
		}
		if !fs.Changed(name) {
			continue
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok && v.Kind() == reflect.Slice && !isText(v.Type()) {
			// String() of a slice flag is "[a,b]"; take the elements.
			v.Set(reflect.ValueOf(append([]string(nil), sv.GetSlice()...)).Convert(v.Type()))
			continue
		}
		if err := setString(v, f.Value.String()); err != nil {
			return fmt.Errorf("flag --%s (key %s): %w", name, keys[name], err)
		}
	}
	return nil
}

// setString sets the leaf v from its string form as written in the
// environment or on the command line.
func setString(v reflect.Value, s string) error {
	if isText(v.Type()) {
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	}
	t := strings.TrimSpace(s)
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(t)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == durationType {
			d, err := time.ParseDuration(t)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 200ms or 2s", s)
			}
			v.SetInt(int64(d))
			return nil
		}
		i, err := strconv.ParseInt(t, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number that fits %s", s, v.Type())
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(t, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative whole number that fits %s", s, v.Type())
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(t, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}
