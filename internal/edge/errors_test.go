package edge

import (
	"fmt"
	"testing"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/txn"
)

// The one table from typed errors to Redis's replies. These texts are
// what clients and the chaos checker read (CLUSTERDOWN and TRYAGAIN: not
// applied; UNCERTAIN: may have been), so they are pinned here.
func TestErrorReplies(t *testing.T) {
	notApplied := func(err error) error { return fmt.Errorf("%w: %w", txn.ErrNotApplied, err) }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&command.UnknownError{Args: [][]byte{[]byte("nosuch"), []byte("a")}}, "ERR unknown command 'nosuch', with args beginning with: 'a' "},
		{&command.ArityError{Name: "get"}, "ERR wrong number of arguments for 'get' command"},
		{&failure.NoLeaderError{Group: 3}, "CLUSTERDOWN partition 3 has no reachable leader, nothing was applied"},
		{&failure.NoLeaderError{Group: 3, Read: true}, "CLUSTERDOWN partition 3 could not serve the read: no reachable leader"},
		{&failure.BusyError{}, "TRYAGAIN node overloaded, nothing was applied"},
		{&failure.LockedError{}, "TRYAGAIN the key is locked by a transaction still in progress, nothing was applied"},
		{&failure.LockedError{Read: true}, "TRYAGAIN the key is being written by a transaction still in progress, could not read it"},
		{&failure.UncertainError{Group: 2, Reason: "deadline exceeded"}, "UNCERTAIN the write to partition 2 may or may not have been applied (deadline exceeded)"},
		{&failure.EngineError{Msg: "engine stopped"}, "ERR engine stopped"},
		{&txn.GaveUpError{Attempts: 50}, "TRYAGAIN transaction gave up after 50 attempts that met conflicting transactions, nothing was applied"},
		{&txn.AbortedError{Group: 1}, "TRYAGAIN transaction could not reach partition 1 (no answer), nothing was applied"},
		{&txn.AbortedError{Group: 1, Cause: notApplied(&failure.NoLeaderError{Group: 1})},
			"TRYAGAIN transaction could not reach partition 1 (CLUSTERDOWN partition 1 has no reachable leader, nothing was applied), nothing was applied"},
		{&txn.AbortedError{Group: 4, Cause: fmt.Errorf("%w: %w", txn.ErrUnknown, &txn.InternalError{Msg: "prepare answered +OK"})},
			"TRYAGAIN transaction could not reach partition 4 (ERR internal transaction error: prepare answered +OK), nothing was applied"},
		{&txn.DecisionUnknownError{Group: 5}, "UNCERTAIN the transaction may or may not have been applied (its decision in partition 5 could not be confirmed)"},
		{&txn.InternalError{Msg: "malformed reply"}, "ERR internal transaction error: malformed reply"},
		{txn.ErrCrossMSETNX, "CROSSSLOT MSETNX with keys in different partitions cannot run inside MULTI; run it alone"},
		{notApplied(&failure.BusyError{}), "TRYAGAIN node overloaded, nothing was applied"},
		{failure.Loading.Err(), "LOADING Kintsu is restoring a backup into this partition"},
		{&txn.AbortedError{Group: 2, Cause: notApplied(failure.Loading.Err())},
			"TRYAGAIN transaction could not reach partition 2 (LOADING Kintsu is restoring a backup into this partition), nothing was applied"},
		{failure.Blocked.Err(), "ERR internal: unexpected state machine answer 2"},
		// Authentication and ACLs, in Redis 7's words.
		{acl.ErrNoAuth, "NOAUTH Authentication required."},
		{acl.ErrWrongPass, "WRONGPASS invalid username-password pair or user is disabled."},
		{&acl.CommandDeniedError{User: "alice", Command: "get"}, "NOPERM User alice has no permissions to run the 'get' command"},
		{&acl.CommandDeniedError{User: "bob", Command: "acl|setuser"}, "NOPERM User bob has no permissions to run the 'acl|setuser' command"},
		{&acl.KeyDeniedError{User: "alice"}, "NOPERM No permissions to access a key"},
		{&acl.RuleError{Rule: "+nosuch", Msg: "Unknown command or category name in ACL"}, "ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"},
	} {
		if got := string(ErrorReply(tc.err)); got != "-"+tc.want+"\r\n" {
			t.Errorf("%T: %q, want %q", tc.err, got, "-"+tc.want+"\r\n")
		}
	}
	for _, err := range []error{&failure.NoLeaderError{}, &failure.BusyError{}, &failure.LockedError{}} {
		if !failure.NotApplied(err) || !failure.NotApplied(fmt.Errorf("wrapped: %w", err)) {
			t.Errorf("%T is not NotApplied", err)
		}
	}
	for _, err := range []error{&failure.UncertainError{}, &failure.EngineError{}} {
		if failure.NotApplied(err) {
			t.Errorf("%T says not applied; it may have been", err)
		}
	}
}
