package edge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// ACL SETUSER, DELUSER, GETUSER, LIST, USERS, WHOAMI and CAT, answered as
// Redis 7 answers them. Changes go through the metadata group (see
// auth.go); the node reads the users back before it answers, so the
// change is in force on this node when the client hears OK, and on every
// other node within the staleness bound.

func cmdACL(f *Server, args [][]byte, st *connState) []byte {
	sub := lower(args[1])
	wrong := func() []byte { return errArity([][]byte{[]byte("acl|" + sub)}) }
	switch sub {
	case "setuser":
		if len(args) < 3 {
			return wrong()
		}
		return f.aclSetUser(args[2], args[3:])
	case "deluser":
		if len(args) < 3 {
			return wrong()
		}
		return f.aclDelUser(args[2:])
	case "getuser":
		if len(args) != 3 {
			return wrong()
		}
		return f.withUsers(func(t *acl.Table) []byte { return getUserReply(t, string(args[2])) })
	case "list", "users":
		if len(args) != 2 {
			return wrong()
		}
		return f.withUsers(func(t *acl.Table) []byte {
			names := t.Names()
			b := resp.AppendArrayHeader(nil, len(names))
			for _, n := range names {
				if sub == "users" {
					b = resp.AppendBulkString(b, n)
				} else {
					u, _ := t.User(n)
					b = resp.AppendBulkString(b, u.Line())
				}
			}
			return b
		})
	case "whoami":
		if len(args) != 2 {
			return wrong()
		}
		return resp.AppendBulkString(nil, st.auth.user)
	case "cat":
		switch len(args) {
		case 2:
			b := resp.AppendArrayHeader(nil, len(acl.Categories))
			for _, c := range acl.Categories {
				b = resp.AppendBulkString(b, c)
			}
			return b
		case 3:
			names, ok := acl.CommandsIn(string(args[2]))
			if !ok {
				return resp.AppendError(nil, fmt.Sprintf("ERR Unknown category '%.128s'", args[2]))
			}
			b := resp.AppendArrayHeader(nil, len(names))
			for _, n := range names {
				b = resp.AppendBulkString(b, n)
			}
			return b
		}
		return wrong()
	case "load", "save":
		return resp.AppendError(nil, "ERR Kintsu keeps its users in the cluster's metadata: there is no ACL file to "+sub)
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%.128s'. Try ACL HELP.", args[1]))
}

// withUsers answers from the users read linearizably.
func (f *Server) withUsers(answer func(t *acl.Table) []byte) []byte {
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	t, err := f.readUsers(ctx)
	if err != nil {
		return ErrorReply(err)
	}
	return answer(t)
}

// getUserReply is ACL GETUSER's reply (RESP2: a flat array of fields).
func getUserReply(t *acl.Table, name string) []byte {
	u, ok := t.User(name)
	if !ok {
		return resp.AppendNull(nil)
	}
	b := resp.AppendArrayHeader(nil, 12)
	b = resp.AppendBulkString(b, "flags")
	flags := u.Flags()
	b = resp.AppendArrayHeader(b, len(flags))
	for _, fl := range flags {
		b = resp.AppendBulkString(b, fl)
	}
	b = resp.AppendBulkString(b, "passwords")
	b = resp.AppendArrayHeader(b, len(u.Passwords))
	for _, p := range u.Passwords {
		b = resp.AppendBulkString(b, p)
	}
	for _, kv := range [][2]string{{"commands", u.CommandRules()}, {"keys", u.KeyRules()}, {"channels", u.ChannelRules()}} {
		b = resp.AppendBulkString(b, kv[0])
		b = resp.AppendBulkString(b, kv[1])
	}
	b = resp.AppendBulkString(b, "selectors")
	return resp.AppendArrayHeader(b, 0)
}

// aclSetUser proposes the rules to the metadata group. Passwords are
// hashed first, so none reaches the log or a snapshot in plaintext; an
// error naming a hashed rule names the client's rule again.
func (f *Server) aclSetUser(name []byte, rules [][]byte) []byte {
	if !acl.ValidName(name) {
		return resp.AppendError(nil, "ERR "+acl.ErrBadName.Error())
	}
	if len(rules) > acl.MaxRules {
		return resp.AppendError(nil, fmt.Sprintf("ERR at most %d rules at once", acl.MaxRules))
	}
	cmd := [][]byte{[]byte(statemachine.CmdACLSetUser), name}
	shown := map[string]string{}
	for _, r := range rules {
		if len(r) > 0 && (r[0] == '>' || r[0] == '<') {
			sign := byte('#')
			if r[0] == '<' {
				sign = '!'
			}
			h := string(sign) + acl.Hash(r[1:])
			shown[h] = string(r)
			r = []byte(h)
		}
		cmd = append(cmd, r)
	}
	reply := f.metaWrite(cmd)
	for h, r := range shown {
		reply = []byte(strings.Replace(string(reply), "modifier '"+h+"'", "modifier '"+r+"'", 1))
	}
	return reply
}

func (f *Server) aclDelUser(names [][]byte) []byte {
	return f.metaWrite(append([][]byte{[]byte(statemachine.CmdACLDelUser)}, names...))
}

// metaWrite proposes an ACL change and, once applied, reads the users
// back so this node enforces the change before it answers.
func (f *Server) metaWrite(cmd [][]byte) []byte {
	return f.metaPropose(cmd, func(ctx context.Context) error {
		_, err := f.readUsers(ctx)
		return err
	})
}

// metaPropose proposes a change to the metadata group and, once it is
// applied, runs readBack (which reads the changed record and adopts it),
// so this node serves the change before it answers. The reply is the
// change's, or the error that stopped it.
func (f *Server) metaPropose(cmd [][]byte, readBack func(context.Context) error) []byte {
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	out, errs := f.cfg.Router.WriteMany(ctx, statemachine.MetaGroup, [][][]byte{cmd})
	if sig, _, ok := failure.SignalOf(out[0]); ok && errs[0] == nil {
		errs[0] = sig.Err()
	}
	if errs[0] != nil {
		return ErrorReply(errs[0])
	}
	if len(out[0]) > 0 && out[0][0] == '-' {
		return out[0]
	}
	if err := readBack(ctx); err != nil {
		return ErrorReply(err)
	}
	return out[0]
}

// metaVersion reads a version record of the metadata group (0 when never
// written).
func (f *Server) metaVersion(ctx context.Context, key []byte) (uint64, error) {
	b, null, err := f.readMetaRecord(ctx, key)
	if err != nil || null {
		return 0, err
	}
	return strconv.ParseUint(string(b), 10, 64)
}

// readMetaRecord reads one record of the metadata group linearizably:
// its value, or null when it was never written.
func (f *Server) readMetaRecord(ctx context.Context, key []byte) (value []byte, null bool, err error) {
	reply, err := f.readOne(ctx, statemachine.MetaGroup, [][]byte{[]byte("get"), key})
	if err != nil {
		return nil, false, err
	}
	v, _, err := resp.ParseValue(reply)
	switch {
	case err != nil:
		return nil, false, errors.New("unreadable " + string(key) + " record")
	case v.Kind == '-':
		return nil, false, errors.New(string(v.Str))
	}
	return v.Str, v.Null, nil
}
