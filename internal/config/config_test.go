package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type settings struct {
	dir      string
	port     int
	timeout  time.Duration
	insecure bool
	cluster  string
	reserve  string
}

func newFlags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	fs.StringVar(&s.dir, "data-dir", "", "")
	fs.IntVar(&s.port, "port", 7001, "")
	fs.DurationVar(&s.timeout, "request-timeout", 5*time.Second, "")
	fs.BoolVar(&s.insecure, "insecure", false, "")
	fs.StringVar(&s.cluster, "initial-cluster", "", "")
	fs.Func("disk-reserve", "", func(v string) error {
		if v == "bad" {
			return os.ErrInvalid
		}
		s.reserve = v
		return nil
	})
	Register(fs)
	return fs
}

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFlagsOverEnvironmentOverFile: each source overrides the one below
// it, key by key, in TOML and in YAML, and Sources says which won.
func TestFlagsOverEnvironmentOverFile(t *testing.T) {
	toml := write(t, "k.toml", `
data-dir = "/from/file"
port = 1
request_timeout = "7s"
insecure = true
disk-reserve = "2GiB"
initial-cluster = { 1 = "a:1", 2 = "b:2" }
`)
	yaml := write(t, "k.yaml", `
data-dir: /from/file
port: 1
request-timeout: 7s
insecure: true
disk-reserve: 2GiB
initial-cluster: {1: "a:1", 2: "b:2"}
`)
	for _, file := range []string{toml, yaml} {
		var s settings
		fs := newFlags(&s)
		l, err := Load(fs, []string{"--config", file, "--port=3"}, []string{"KINTSU_PORT=2", "KINTSU_REQUEST_TIMEOUT=8s", "PATH=/bin", "KINTSU_HTTP=elsewhere"})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		want := settings{dir: "/from/file", port: 3, timeout: 8 * time.Second, insecure: true, cluster: "1=a:1,2=b:2", reserve: "2GiB"}
		if s != want {
			t.Fatalf("%s: %+v, want %+v", file, s, want)
		}
		for name, src := range map[string]Source{"data-dir": FromFile, "port": FromFlag, "request-timeout": FromEnv} {
			if l.Sources[name] != src {
				t.Fatalf("%s: %s from %q, want %q", file, name, l.Sources[name], src)
			}
		}
	}
	// The file may come from the environment too.
	var s settings
	if _, err := Load(newFlags(&s), nil, []string{FileEnv + "=" + toml}); err != nil || s.dir != "/from/file" {
		t.Fatalf("$%s: %+v %v", FileEnv, s, err)
	}
}

// TestMistakesAreRefusedWithTheirSource: an unknown key, a bad value in
// the file or the environment, and a file that does not parse.
func TestMistakesAreRefusedWithTheirSource(t *testing.T) {
	cases := []struct {
		file, env, want string
	}{
		{file: `data-dri = "x"`, want: `unknown setting "data-dri"`},
		{file: `port = "many"`, want: "k.toml: port: parse error"},
		{file: `disk-reserve = "bad"`, want: "disk-reserve"},
		{file: `port = [1, [2]]`, want: "a list inside a list"},
		{file: `port = `, want: "k.toml"},
		{file: `config = "other.toml"`, want: `unknown setting "config"`},
		{env: "KINTSU_REQUEST_TIMEOUT=soon", want: "$KINTSU_REQUEST_TIMEOUT"},
	}
	for _, c := range cases {
		var s settings
		args := []string{}
		if c.file != "" {
			args = append(args, "--config="+write(t, "k.toml", c.file))
		}
		_, err := Load(newFlags(&s), args, []string{c.env})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("file %q env %q: %v, want an error with %q", c.file, c.env, err, c.want)
		}
	}
}

// TestPrintedConfigLoadsBack: what Print writes, loaded as a file,
// gives the same settings.
func TestPrintedConfigLoadsBack(t *testing.T) {
	var s settings
	fs := newFlags(&s)
	l, err := Load(fs, []string{"--data-dir", `/a "quoted" dir`, "--disk-reserve", "5%", "--insecure"}, []string{"KINTSU_PORT=9"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Print(&out, fs, l); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "port = 9  # from $KINTSU_PORT") {
		t.Fatalf("no source comment:\n%s", out.String())
	}
	var back settings
	if _, err := Load(newFlags(&back), []string{"--config", write(t, "p.toml", out.String())}, nil); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if back != s {
		t.Fatalf("loaded back %+v, want %+v\n%s", back, s, out.String())
	}
}
