package statemachine

import (
	"strconv"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// The cluster's ACL users live in the metadata group so every node agrees
// on them: one record holding the whole table (acl.Table, each user as
// its ACL LIST description) and one holding its version, both stored as
// plain string values so a node reads them with GET through the router.
// The version is read on its own by nodes polling for changes; the table
// only when it moved.
//
// The commands carry rules, not users: ACL SETUSER's rules are applied
// here, to the table as committed, so two SETUSERs of one user from two
// nodes compose as they would on one Redis, never losing one. Passwords
// reach the log only hashed (the edge turns >pass into #hash).
const (
	CmdACLSetUser = "kintsu.acl.setuser" // name rule...
	CmdACLDelUser = "kintsu.acl.deluser" // name...
)

// Keys of the ACL records in the metadata group.
var (
	ACLKey        = []byte("acl")
	ACLVersionKey = []byte("aclversion")
)

// LoadACL reads the table from a metadata group's state: the default
// table when none was stored. An unreadable table is an error reply,
// alike on every replica.
func LoadACL(r interface {
	Get(key []byte) ([]byte, bool, error)
}) (*acl.Table, string, error) {
	stored, ok, err := r.Get(ACLKey)
	if err != nil || !ok {
		return acl.NewTable(), "", err
	}
	b, ok := kv.LoadString(stored)
	if !ok {
		return nil, "ERR corrupt ACL table", nil
	}
	t, err := acl.Unmarshal(b)
	if err != nil {
		return nil, "ERR corrupt ACL table", nil
	}
	return t, "", nil
}

func storeACL(w kv.Writer, t *acl.Table) error {
	if err := w.Put(ACLKey, kv.StoredString(t.Marshal()), false); err != nil {
		return err
	}
	return w.Put(ACLVersionKey, kv.StoredString(strconv.AppendUint(nil, t.Version, 10)), false)
}

// ApplyACL applies kintsu.acl.setuser and kintsu.acl.deluser (exported
// for fakes of the metadata group in other packages' tests). A refused
// change answers Redis's error and changes nothing.
func ApplyACL(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	t, refusal, err := LoadACL(w)
	if err != nil {
		return out, err
	}
	if refusal != "" {
		return resp.AppendError(out, refusal), nil
	}
	switch string(args[0]) {
	case CmdACLSetUser:
		nt, err := t.SetUser(string(args[1]), args[2:])
		if err != nil {
			return resp.AppendError(out, "ERR "+err.Error()), nil
		}
		if err := storeACL(w, nt); err != nil {
			return out, err
		}
		return resp.AppendSimple(out, "OK"), nil
	default:
		names := make([]string, len(args)-1)
		for i, a := range args[1:] {
			names[i] = string(a)
		}
		nt, n, err := t.DelUsers(names)
		if err != nil {
			return resp.AppendError(out, "ERR "+err.Error()), nil
		}
		if n > 0 {
			if err := storeACL(w, nt); err != nil {
				return out, err
			}
		}
		return resp.AppendInt(out, int64(n)), nil
	}
}
