package edge

import (
	"testing"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

func TestNotifyFlagsAsRedisWritesThem(t *testing.T) {
	for in, want := range map[string]string{"gKE": "gKE", "$lshzxeKE": "$lshzxeKE", "KA": "AK", "EA": "AE", "": "", "Elm": "lEm"} {
		f, ok := parseNotify(in)
		if !ok || formatNotify(f) != want {
			t.Errorf("%q: %q (%v), want %q", in, formatNotify(f), ok, want)
		}
	}
	if _, ok := parseNotify("KEq"); ok {
		t.Error("an unknown class was accepted")
	}
}

func TestEventsOfWrites(t *testing.T) {
	ev := func(reply []byte, args ...string) []event {
		c, err := command.Decode(bytesOf(args), func([]byte) uint64 { return 0 })
		if err != nil {
			t.Fatal(err)
		}
		return eventsOf(&c, reply)
	}
	one := func(es []event, name, key string) bool {
		return len(es) == 1 && es[0].name == name && string(es[0].key) == key
	}
	if es := ev(resp.AppendSimple(nil, "OK"), "SET", "k", "v"); !one(es, "set", "k") {
		t.Errorf("SET: %v", es)
	}
	if es := ev(resp.AppendInt(nil, 0), "SREM", "s", "x"); len(es) != 0 {
		t.Errorf("SREM of nothing: %v", es)
	}
	if es := ev(resp.AppendInt(nil, 1), "SREM", "s", "x"); !one(es, "srem", "s") {
		t.Errorf("SREM: %v", es)
	}
	if es := ev(resp.AppendNull(nil), "RPOP", "l"); len(es) != 0 {
		t.Errorf("RPOP of nothing: %v", es)
	}
	if es := ev(resp.AppendInt(nil, 11), "HINCRBY", "h", "f", "10"); !one(es, "hincrby", "h") {
		t.Errorf("HINCRBY: %v", es)
	}
	if es := ev(resp.AppendSimple(nil, "OK"), "RENAME", "a", "b"); len(es) != 2 || es[0].name != "rename_from" || string(es[1].key) != "b" {
		t.Errorf("RENAME: %v", es)
	}
	if es := ev(resp.AppendError(nil, "WRONGTYPE x"), "LPUSH", "l", "a"); len(es) != 0 {
		t.Errorf("a refused write: %v", es)
	}
	if es := ev(resp.AppendBulkString(nil, "v"), "GET", "k"); len(es) != 0 {
		t.Errorf("a read: %v", es)
	}
}
