package events

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/kintsu/kintsu/internal/api"
)

// Event is one recorded log record; its Attrs are key=value text,
// bounded.
type Event = api.Event

// maxAttrs bounds an event's attribute text.
const maxAttrs = 512

// Recorder is a ring of a node's latest events.
type Recorder struct {
	node uint64
	mu   sync.Mutex
	ring []Event // guarded by mu
	next int     // guarded by mu: where the next event goes
	full bool    // guarded by mu
}

// New keeps the latest capacity events of node.
func New(node uint64, capacity int) *Recorder {
	return &Recorder{node: node, ring: make([]Event, max(capacity, 1))}
}

func (r *Recorder) add(e Event) {
	r.mu.Lock()
	r.ring[r.next] = e
	r.next = (r.next + 1) % len(r.ring)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
}

// Latest returns up to n events, newest first.
func (r *Recorder) Latest(n int) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := r.next
	if r.full {
		size = len(r.ring)
	}
	n = min(n, size)
	out := make([]Event, 0, n)
	for i := range n {
		out = append(out, r.ring[(r.next-1-i+len(r.ring))%len(r.ring)])
	}
	return out
}

// Tee returns a handler that passes every record to next and records
// those at Info and above, whatever next's level.
func (r *Recorder) Tee(next slog.Handler) slog.Handler {
	return &tee{next: next, rec: r}
}

type tee struct {
	next  slog.Handler
	rec   *Recorder
	attrs string // from WithAttrs, rendered
	group string
}

func (t *tee) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || t.next.Enabled(ctx, l)
}

func (t *tee) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelInfo {
		var b strings.Builder
		b.WriteString(t.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, t.group, a)
			return b.Len() < maxAttrs
		})
		attrs := strings.TrimSpace(b.String())
		if len(attrs) > maxAttrs {
			attrs = attrs[:maxAttrs] + "…"
		}
		t.rec.add(Event{TimeMS: rec.Time.UnixMilli(), Node: t.rec.node, Level: rec.Level.String(), Message: rec.Message, Attrs: attrs})
	}
	if t.next.Enabled(ctx, rec.Level) {
		return t.next.Handle(ctx, rec)
	}
	return nil
}

func (t *tee) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(t.attrs)
	for _, a := range as {
		if a.Key == "node" { // every event names its node already
			continue
		}
		appendAttr(&b, t.group, a)
	}
	attrs := b.String()
	if len(attrs) > maxAttrs {
		attrs = attrs[:maxAttrs]
	}
	return &tee{next: t.next.WithAttrs(as), rec: t.rec, attrs: attrs, group: t.group}
}

func (t *tee) WithGroup(name string) slog.Handler {
	g := name
	if t.group != "" {
		g = t.group + "." + name
	}
	return &tee{next: t.next.WithGroup(name), rec: t.rec, attrs: t.attrs, group: g}
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, ga := range v.Group() {
			appendAttr(b, key, ga)
		}
		return
	}
	s := v.String()
	if strings.ContainsAny(s, " \"=") {
		s = fmt.Sprintf("%q", s)
	}
	fmt.Fprintf(b, " %s=%s", key, s)
}
