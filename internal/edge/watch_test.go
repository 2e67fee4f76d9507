package edge

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/resp"
)

// A WATCH refused for watching too many keys loses the watch the client
// asked for, so the EXEC pipelined after it fails (null) instead of
// running unguarded, and no transaction reaches the coordinator.
func TestWatchOverTheLimitFailsTheExec(t *testing.T) {
	h := newHarness(t)
	defer h.close()
	watch := make([][]byte, 0, maxWatched+2)
	watch = append(watch, []byte("WATCH"))
	for i := range maxWatched + 1 {
		watch = append(watch, fmt.Appendf(nil, "k%d", i))
	}
	var batch []byte
	for _, cmd := range [][][]byte{watch, {[]byte("MULTI")}, {[]byte("SET"), []byte("k1"), []byte("x")}, {[]byte("EXEC")}} {
		batch = resp.AppendArrayHeader(batch, len(cmd))
		for _, a := range cmd {
			batch = resp.AppendBulk(batch, a)
		}
	}
	got := strings.Join(h.exchange(t, "c1", batch, 4), "")
	want := fmt.Sprintf("(error) ERR at most %d keys may be watched\nOK\nQUEUED\n(nil)\n", maxWatched)
	if got != want {
		t.Fatalf("replies:\n%s\nwant:\n%s", got, want)
	}
	if calls := h.log.take(); len(calls) != 0 {
		t.Fatalf("the transaction reached the fakes: %v", calls)
	}
}
