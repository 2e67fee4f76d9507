package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix begins the environment variable of every flag.
const EnvPrefix = "KINTSU_"

// FileEnv names the configuration file when --config is not given.
const FileEnv = EnvPrefix + "CONFIG"

// maxFileBytes bounds a configuration file.
const maxFileBytes = 1 << 20

// Source is where a flag's value came from.
type Source string

const (
	FromDefault Source = ""
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

// Loaded is the outcome of Load: the file read ("" for none), and the
// source of every flag set by something other than its default.
type Loaded struct {
	File    string
	Sources map[string]Source
}

// Register adds --config and --print-config to fs.
func Register(fs *flag.FlagSet) (print *bool) {
	fs.String("config", "", "configuration file (TOML, or YAML by its .yaml/.yml name) with any of these flags as keys (also $"+FileEnv+"); flags > KINTSU_* environment > file")
	return fs.Bool("print-config", false, "print the configuration these flags, the environment and the file give, as a file for --config, and exit")
}

// Options says where a command looks for its file besides --config.
type Options struct {
	// FileEnv names the variable that may name the file (FileEnv when
	// empty).
	FileEnv string
	// DefaultFile is read when neither --config nor FileEnv names one,
	// if it exists.
	DefaultFile string
}

// Load sets fs's flags from the configuration file, then from environ
// (KEY=VALUE pairs, as os.Environ), then parses args. fs must hold
// --config (Register).
func Load(fs *flag.FlagSet, args, environ []string) (Loaded, error) {
	return LoadWith(fs, args, environ, Options{})
}

// LoadWith is Load with opts.
func LoadWith(fs *flag.FlagSet, args, environ []string, opts Options) (Loaded, error) {
	if opts.FileEnv == "" {
		opts.FileEnv = FileEnv
	}
	l := Loaded{Sources: map[string]Source{}}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(flag.Getter); !ok {
			f.Value = &rawValue{Value: f.Value}
		}
	})
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	l.File = ArgValue(args, "config")
	if l.File == "" {
		l.File = env[opts.FileEnv]
	}
	if l.File == "" && opts.DefaultFile != "" {
		if _, err := os.Stat(opts.DefaultFile); err == nil {
			l.File = opts.DefaultFile
		}
	}
	if l.File != "" {
		settings, err := readFile(l.File)
		if err != nil {
			return l, err
		}
		for _, name := range sortedKeys(settings) {
			if fs.Lookup(name) == nil || name == "config" || name == "print-config" {
				return l, fmt.Errorf("%s: unknown setting %q (see --help for the flags)", l.File, name)
			}
			if err := fs.Set(name, settings[name]); err != nil {
				return l, fmt.Errorf("%s: %s: %v", l.File, name, err)
			}
			l.Sources[name] = FromFile
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || envErr != nil {
			return
		}
		v, ok := env[EnvName(f.Name)]
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("$%s: %v", EnvName(f.Name), err)
			return
		}
		l.Sources[f.Name] = FromEnv
	})
	if envErr != nil {
		return l, envErr
	}
	if err := fs.Parse(args); err != nil {
		return l, err
	}
	fs.Visit(func(f *flag.Flag) {
		if l.Sources[f.Name] == FromDefault || flagGiven(args, f.Name) {
			l.Sources[f.Name] = FromFlag
		}
	})
	return l, nil
}

// EnvName is the environment variable of flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ArgValue finds flag name's value in args before they are parsed (the
// file must be read first, so flags can override it); "" if absent.
func ArgValue(args []string, want string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != want {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func flagGiven(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// readFile reads a configuration file into flag values, by flag name.
func readFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxFileBytes)
	}
	raw := map[string]any{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
	default:
		if _, err := toml.Decode(string(data), &raw); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
	}
	out := map[string]string{}
	for k, v := range raw {
		name := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		s, err := flagValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, k, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s: %s given twice", path, name)
		}
		out[name] = s
	}
	return out, nil
}

// flagValue writes a file's value as a flag would take it: a list as
// comma-separated items, a table (initial-cluster's id -> address) as
// id=value pairs.
func flagValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case time.Duration:
		return v.String(), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := flagValue(e)
			if err != nil {
				return "", err
			}
			if _, isList := e.([]any); isList {
				return "", errors.New("a list inside a list")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		parts := make([]string, 0, len(v))
		for _, k := range sortedKeys(v) {
			s, err := flagValue(v[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, k+"="+s)
		}
		return strings.Join(parts, ","), nil
	case map[any]any:
		m := map[string]any{}
		for k, e := range v {
			m[fmt.Sprint(k)] = e
		}
		return flagValue(m)
	case nil:
		return "", errors.New("no value")
	}
	return "", fmt.Errorf("a value of type %T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Print writes fs's configuration as a TOML file for --config: every
// flag but --config and --print-config, each with its value and, as a
// comment, where the value came from.
func Print(w io.Writer, fs *flag.FlagSet, l Loaded) error {
	var b strings.Builder
	b.WriteString("# Kintsu configuration: flags > KINTSU_* environment > file")
	if l.File != "" {
		b.WriteString(" (" + l.File + ")")
	}
	b.WriteString("\n")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	slices.Sort(names)
	for _, name := range names {
		if name == "config" || name == "print-config" {
			continue
		}
		f := fs.Lookup(name)
		if r, ok := f.Value.(*rawValue); ok && !r.set && r.String() == "" {
			// A flag that cannot print its default: left out, so it keeps it.
			fmt.Fprintf(&b, "# %s: its default\n", name)
			continue
		}
		fmt.Fprintf(&b, "%s = %s", name, tomlValue(f.Value))
		switch l.Sources[name] {
		case FromFile:
			b.WriteString("  # from the file")
		case FromEnv:
			b.WriteString("  # from $" + EnvName(name))
		case FromFlag:
			b.WriteString("  # from the command line")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tomlValue writes a flag's value as TOML: booleans and numbers bare,
// everything else (durations included) as a string its flag parses.
func tomlValue(v flag.Value) string {
	if g, ok := v.(flag.Getter); ok {
		switch x := g.Get().(type) {
		case bool:
			return strconv.FormatBool(x)
		case int, int64, uint, uint64:
			return fmt.Sprint(x)
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	}
	return strconv.Quote(v.String())
}

// rawValue keeps what was last given to a flag whose value cannot tell
// it back (flag.Func's), so Print can write it.
type rawValue struct {
	flag.Value
	raw string
	set bool
}

func (r *rawValue) Set(s string) error {
	if err := r.Value.Set(s); err != nil {
		return err
	}
	r.raw, r.set = s, true
	return nil
}

func (r *rawValue) String() string {
	if r.set {
		return r.raw
	}
	return r.Value.String()
}

func (r *rawValue) IsBoolFlag() bool {
	b, ok := r.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
