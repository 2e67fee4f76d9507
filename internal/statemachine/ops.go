package statemachine

import "github.com/kintsu/kintsu/internal/command"

// The internal commands of the state machines kept in this package, in the
// command registry so that applying a committed command looks it up once
// (Classify) and dispatches on its Spec. Internal: no client may send them.
type (
	backupOp struct{} // a data partition's backup and restore operations
	metaOp   struct{} // the metadata group's operations
)

func init() {
	internal := func(name string, impl any) *command.Spec {
		return &command.Spec{Name: name, Arity: -2, Flags: command.Internal | command.Write, Category: command.CatInternal, Impl: impl}
	}
	for _, name := range []string{OpCut, OpUncut, OpRestoreBegin, OpRestoreLoad, OpRestoreEnd} {
		command.Register(internal(name, backupOp{}))
	}
	for _, name := range []string{CmdHeartbeat, CmdNodeAddrs, CmdPartition, CmdMetaGroup, CmdNodeState, CmdNodeJoin, CmdACLSetUser, CmdACLDelUser, CmdFunctionLoad, CmdFunctionDelete, CmdConfigSet} {
		command.Register(internal(name, metaOp{}))
	}
	flush := internal(CmdFunctionFlush, metaOp{})
	flush.Arity = -1
	command.Register(flush)
}
