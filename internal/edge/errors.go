package edge

import (
	"errors"
	"fmt"

	"github.com/kintsu/kintsu/internal/acl"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/txn"
)

// ErrorReply is Redis's reply to a typed error of the request path. This
// file is the one table from Kintsu's errors to Redis's error replies:
// CLUSTERDOWN and TRYAGAIN say nothing was applied, UNCERTAIN that it may
// have been.
func ErrorReply(err error) []byte { return resp.AppendError(nil, errorText(err)) }

func errorText(err error) string {
	var (
		unknown   *command.UnknownError
		arity     *command.ArityError
		noLeader  *failure.NoLeaderError
		busy      *failure.BusyError
		locked    *failure.LockedError
		uncertain *failure.UncertainError
		engine    *failure.EngineError
		noSpace   *failure.NoSpaceError
		loading   *failure.LoadingError
		wrong     *failure.WrongGroupError
		signal    *failure.SignalError
		gaveUp    *txn.GaveUpError
		aborted   *txn.AbortedError
		undecided *txn.DecisionUnknownError
		internal  *txn.InternalError
		tooLarge  *failure.ReplyTooLargeError
		limit     *limitError
	)
	if text, ok := aclErrorText(err); ok {
		return text
	}
	switch {
	case errors.As(err, &unknown):
		return kv.UnknownCommand(unknown.Args)
	case errors.As(err, &arity):
		return kv.WrongArity(arity.Name)
	case errors.As(err, &tooLarge):
		return fmt.Sprintf("ERR reply of %d bytes or more is too large (at most %d can be sent between nodes); read fewer keys at a time", tooLarge.Bytes, tooLarge.Limit)
	// A transaction's own outcome first: its cause is worded inside it.
	case errors.As(err, &gaveUp):
		return fmt.Sprintf("TRYAGAIN transaction gave up after %d attempts that met conflicting transactions, nothing was applied", gaveUp.Attempts)
	case errors.As(err, &aborted):
		reason := "no answer"
		if aborted.Cause != nil {
			reason = errorText(aborted.Cause)
		}
		return fmt.Sprintf("TRYAGAIN transaction could not reach partition %d (%s), nothing was applied", aborted.Group, reason)
	case errors.As(err, &undecided):
		return fmt.Sprintf("UNCERTAIN the transaction may or may not have been applied (its decision in partition %d could not be confirmed)", undecided.Group)
	case errors.As(err, &internal):
		return "ERR internal transaction error: " + internal.Msg
	case errors.Is(err, txn.ErrCrossMSETNX):
		return "CROSSSLOT MSETNX with keys in different partitions cannot run inside MULTI; run it alone"
	case errors.As(err, &noLeader) && noLeader.Read:
		return fmt.Sprintf("CLUSTERDOWN partition %d could not serve the read: no reachable leader", noLeader.Group)
	case errors.As(err, &noLeader):
		return fmt.Sprintf("CLUSTERDOWN partition %d has no reachable leader, nothing was applied", noLeader.Group)
	case errors.As(err, &busy):
		return "TRYAGAIN node overloaded, nothing was applied"
	case errors.As(err, &locked) && locked.Read:
		return "TRYAGAIN the key is being written by a transaction still in progress, could not read it"
	case errors.As(err, &locked):
		return "TRYAGAIN the key is locked by a transaction still in progress, nothing was applied"
	case errors.As(err, &uncertain):
		return fmt.Sprintf("UNCERTAIN the write to partition %d may or may not have been applied (%s)", uncertain.Group, uncertain.Reason)
	case errors.As(err, &noSpace):
		return "NOSPACE " + noSpace.Msg
	case errors.As(err, &engine):
		return "ERR " + engine.Msg
	case errors.As(err, &loading):
		return "LOADING Kintsu is restoring a backup into this partition"
	case errors.As(err, &wrong):
		return "TRYAGAIN the key's partition was just split or merged, nothing was applied"
	case errors.As(err, &limit):
		return limit.text
	case errors.As(err, &signal):
		return fmt.Sprintf("ERR internal: unexpected state machine answer %d", signal.Signal)
	}
	return "ERR " + err.Error()
}

// aclErrorText words authentication and ACL refusals as Redis 7 does.
func aclErrorText(err error) (string, bool) {
	var (
		cmd  *acl.CommandDeniedError
		key  *acl.KeyDeniedError
		rule *acl.RuleError
	)
	switch {
	case errors.Is(err, acl.ErrNoAuth):
		return "NOAUTH Authentication required.", true
	case errors.Is(err, acl.ErrWrongPass):
		return "WRONGPASS invalid username-password pair or user is disabled.", true
	case errors.As(err, &cmd):
		return "NOPERM " + cmd.Error(), true
	case errors.As(err, &key):
		return "NOPERM " + key.Error(), true
	case errors.As(err, &rule):
		return "ERR " + rule.Error(), true
	}
	return "", false
}

// errNodeRemoved is what a node removed from the cluster tells its
// clients before it closes their connections (Server.Retire).
const errNodeRemoved = "ERR this node was removed from the cluster; connect to another node"
