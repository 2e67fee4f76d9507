package pubsub

import (
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/resp"
)

// rec records what it is pushed, as the client would read it.
type rec struct {
	frames []string
	refuse bool
}

func (r *rec) Push(frame []byte) bool {
	if r.refuse {
		return false
	}
	v, _, err := resp.ParseValue(frame)
	if err != nil {
		panic(err)
	}
	var parts []string
	for _, e := range v.Array {
		switch {
		case e.Kind == ':':
			parts = append(parts, itoa(e.Int))
		case e.Null:
			parts = append(parts, "(nil)")
		default:
			parts = append(parts, string(e.Str))
		}
	}
	r.frames = append(r.frames, strings.Join(parts, " "))
	return true
}

func itoa(n int64) string { s := resp.AppendInt(nil, n); return string(s[1 : len(s)-2]) }

func (r *rec) take() string {
	out := strings.Join(r.frames, " | ")
	r.frames = nil
	return out
}

func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestSubscribePublishUnsubscribe(t *testing.T) {
	r := NewRegistry()
	a, b := &rec{}, &rec{}
	r.Subscribe(a, Channel, bs("news", "news", "sport"))
	if got := a.take(); got != "subscribe news 1 | subscribe news 1 | subscribe sport 2" {
		t.Fatalf("confirmations: %s", got)
	}
	r.Subscribe(b, Pattern, bs("n*"))
	r.Subscribe(b, Shard, bs("{x}s"))
	if got := b.take(); got != "psubscribe n* 1 | ssubscribe {x}s 1" {
		t.Fatalf("confirmations: %s", got)
	}
	if n := r.Publish(Channel, []byte("news"), []byte("hi")); n != 2 {
		t.Fatalf("PUBLISH reached %d, want 2", n)
	}
	if a.take() != "message news hi" || b.take() != "pmessage n* news hi" {
		t.Fatal("messages not delivered as Redis frames them")
	}
	if n := r.Publish(Channel, []byte("{x}s"), []byte("x")); n != 0 {
		t.Fatalf("a plain PUBLISH reached %d shard subscribers", n)
	}
	if n := r.Publish(Shard, []byte("{x}s"), []byte("x")); n != 1 || b.take() != "smessage {x}s x" {
		t.Fatalf("SPUBLISH reached %d", n)
	}
	if got := r.NumSub(Channel, bs("news", "sport", "none")); got[0] != 1 || got[1] != 1 || got[2] != 0 {
		t.Fatalf("NUMSUB %v", got)
	}
	if got := r.Channels(Channel, []byte("n*"), 10); len(got) != 1 || string(got[0]) != "news" {
		t.Fatalf("CHANNELS n* = %q", got)
	}
	r.Unsubscribe(a, Channel, nil)
	if got := a.take(); got != "unsubscribe news 1 | unsubscribe sport 0" {
		t.Fatalf("UNSUBSCRIBE of all: %s", got)
	}
	r.Unsubscribe(a, Channel, nil)
	if got := a.take(); got != "unsubscribe (nil) 0" {
		t.Fatalf("UNSUBSCRIBE with nothing: %s", got)
	}
	r.Forget(b)
	if n := r.Publish(Channel, []byte("news"), []byte("hi")); n != 0 || len(r.Patterns()) != 0 || len(r.subs) != 0 || len(r.names[Pattern]) != 0 {
		t.Fatalf("after Forget: %d reached, patterns %v, %d subscribers", n, r.Patterns(), len(r.subs))
	}
	if len(r.names[Channel]) != 0 || len(r.names[Shard]) != 0 {
		t.Fatalf("empty channels kept: %v", r.names)
	}
}

func TestRefusedDeliveriesAreNotCounted(t *testing.T) {
	r := NewRegistry()
	a, b := &rec{}, &rec{}
	r.Subscribe(a, Channel, bs("c"))
	r.Subscribe(b, Channel, bs("c"))
	b.refuse = true
	if n := r.Publish(Channel, []byte("c"), []byte("m")); n != 1 {
		t.Fatalf("PUBLISH counted %d, want only the subscriber that took it", n)
	}
}

func TestSubscriptionsPerConnectionAreBounded(t *testing.T) {
	r := NewRegistry()
	a := &rec{}
	names := make([][]byte, MaxPerConn+1)
	for i := range names {
		names[i] = []byte(itoa(int64(i)))
	}
	if r.Subscribe(a, Channel, names) {
		t.Fatal("a connection subscribed past MaxPerConn")
	}
	if got := r.Count(a, Channel); got != MaxPerConn {
		t.Fatalf("%d subscriptions kept, want %d", got, MaxPerConn)
	}
}
