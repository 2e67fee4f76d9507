package command

// Cmd is one command of a client, decoded once at the edge and handed down
// to routing and transactions as it is.
type Cmd struct {
	Spec *Spec
	Args [][]byte // the name first; owned by the Cmd
	Keys []int    // positions of the keys in Args, in order
	// Group is the partition of the first key (0 for a keyless command),
	// and Cross says whether the keys span more than one partition.
	Group uint64
	Cross bool
}

// UnknownError: no client command has that name.
type UnknownError struct{ Args [][]byte }

func (e *UnknownError) Error() string { return "unknown command" }

// ArityError: the command has the wrong number of arguments. AtRun says
// the count is right but the arguments do not pair up (MSET k v k): Redis
// finds that only when the command runs, so MULTI queues it and EXEC
// answers the error in its place.
type ArityError struct {
	Name  string
	AtRun bool
}

func (e *ArityError) Error() string { return "wrong number of arguments for '" + e.Name + "'" }

// Decode looks a client's command up, checks its arity, and finds its keys
// and their partitions (partition maps a key to its partition; nil leaves
// Group and Cross unset). args must hold at least the name.
func Decode(args [][]byte, partition func(key []byte) uint64) (Cmd, error) {
	s := Lookup(args[0])
	if s == nil || s.Is(Internal) {
		return Cmd{}, &UnknownError{Args: args}
	}
	if !s.checkCount(args) {
		return Cmd{}, &ArityError{Name: s.Name}
	}
	if !s.pairsUp(args) {
		return Cmd{Spec: s, Args: args}, &ArityError{Name: s.Name, AtRun: true}
	}
	c := Cmd{Spec: s, Args: args}
	if !s.HasKeys() {
		return c, nil
	}
	c.Keys = s.AppendKeys(nil, args)
	if partition == nil {
		return c, nil
	}
	for n, i := range c.Keys {
		p := partition(args[i])
		if n == 0 {
			c.Group = p
		} else if p != c.Group {
			c.Cross = true
			break
		}
	}
	return c, nil
}

// Writes reports whether the command changes data.
func (c *Cmd) Writes() bool { return c.Spec.Is(Write) }
