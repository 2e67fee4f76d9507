package statemachine

import (
	"encoding/json"
	"sort"
	"strconv"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// CONFIG SET's settings are the cluster's: kept in the metadata group as
// one record (name to value) and its version, which nodes poll, like the
// users and the functions. A setting arrives checked by the node that was
// given it; here only its shape is kept in bounds.
const CmdConfigSet = "kintsu.config.set" // name value [name value ...]

// Keys of the configuration records in the metadata group.
var (
	ConfigKey        = []byte("config")
	ConfigVersionKey = []byte("configversion")
)

// Bounds of the stored settings.
const (
	maxConfigNames = 256
	maxConfigBytes = 4096 // one name or value
)

// ConfigSet is the cluster's settings at one version.
type ConfigSet struct {
	Version  uint64            `json:"version"`
	Settings map[string]string `json:"settings"`
}

// Pairs are the settings in name order.
func (c *ConfigSet) Pairs() [][2]string {
	out := make([][2]string, 0, len(c.Settings))
	for n, v := range c.Settings {
		out = append(out, [2]string{n, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// UnmarshalConfig reads a stored ConfigSet.
func UnmarshalConfig(b []byte) (*ConfigSet, error) {
	var c ConfigSet
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if c.Settings == nil {
		c.Settings = map[string]string{}
	}
	return &c, nil
}

// ApplyConfig applies kintsu.config.set (exported for fakes of the
// metadata group in other packages' tests).
func ApplyConfig(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	if len(args) < 3 || len(args)%2 != 1 {
		return resp.AppendError(out, "ERR malformed config set"), nil
	}
	c := &ConfigSet{Settings: map[string]string{}}
	stored, ok, err := w.Get(ConfigKey)
	if err != nil {
		return out, err
	}
	if ok {
		b, ok := kv.LoadString(stored)
		if !ok {
			return resp.AppendError(out, "ERR corrupt configuration"), nil
		}
		if c, err = UnmarshalConfig(b); err != nil {
			return resp.AppendError(out, "ERR corrupt configuration"), nil
		}
	}
	for i := 1; i+1 < len(args); i += 2 {
		if len(args[i]) == 0 || len(args[i]) > maxConfigBytes || len(args[i+1]) > maxConfigBytes {
			return resp.AppendError(out, "ERR malformed config set"), nil
		}
		c.Settings[string(args[i])] = string(args[i+1])
	}
	if len(c.Settings) > maxConfigNames {
		return resp.AppendError(out, "ERR too many settings"), nil
	}
	c.Version++
	b, err := json.Marshal(c)
	if err != nil {
		return out, err
	}
	if err := w.Put(ConfigKey, kv.StoredString(b), false); err != nil {
		return out, err
	}
	if err := w.Put(ConfigVersionKey, kv.StoredString(strconv.AppendUint(nil, c.Version, 10)), false); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}
