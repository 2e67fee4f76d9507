package edge

import (
	"errors"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// errorReply is Redis's reply to an error met at the edge.
func errorReply(err error) []byte {
	var unknown *command.UnknownError
	var arity *command.ArityError
	switch {
	case errors.As(err, &unknown):
		return resp.AppendError(nil, kv.UnknownCommand(unknown.Args))
	case errors.As(err, &arity):
		return resp.AppendError(nil, kv.WrongArity(arity.Name))
	}
	return resp.AppendError(nil, "ERR "+err.Error())
}
