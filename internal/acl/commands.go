package acl

import (
	"slices"
	"strings"

	"github.com/kintsu/kintsu/internal/command"
)

// Known reports whether name (lower case; "parent|sub" for a subcommand)
// is a command a rule may name: one a client may send, or a subcommand
// of one that Redis lists.
func Known(name string) bool {
	_, ok := redisCommands[name]
	return ok || clientCommand(name)
}

func clientCommand(name string) bool {
	s := command.Lookup([]byte(name))
	return s != nil && !s.Is(command.Internal)
}

// hasSubcommands reports whether Redis splits the command into
// subcommands (ACL, CLIENT, CONFIG, CLUSTER, COMMAND).
func hasSubcommands(name string) bool { return containers[name] }

// containers are the commands with subcommands in redisCommands, found
// once: FullName is on every command's path.
var containers = func() map[string]bool {
	m := map[string]bool{}
	for k := range redisCommands {
		if parent, _, ok := strings.Cut(k, "|"); ok {
			m[parent] = true
		}
	}
	return m
}()

// FullName is the name ACLs know a command by: "get", or for a command
// with subcommands "acl|setuser" when the subcommand is one Redis lists.
func FullName(spec *command.Spec, args [][]byte) string {
	if len(args) >= 2 && hasSubcommands(spec.Name) {
		full := spec.Name + "|" + strings.ToLower(string(args[1]))
		if _, ok := redisCommands[full]; ok {
			return full
		}
	}
	return spec.Name
}

// Subcommands lists the full names Redis gives name's subcommands
// ("config|get", ...), sorted; none for a command without them.
func Subcommands(name string) []string {
	var out []string
	for k := range redisCommands {
		if parent, _, ok := strings.Cut(k, "|"); ok && parent == name {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// InCategory reports whether the command of full name (a subcommand's
// "parent|sub") is in cat, as ACL rules see it.
func InCategory(full, cat string) bool { return inCategory(full, strings.ToLower(cat)) }

// CategoriesOf lists the categories of a command by its full name.
func CategoriesOf(full string) []string {
	if c, ok := redisCommands[full]; ok {
		return c
	}
	if s := command.Lookup([]byte(full)); s != nil {
		return specCategories(s)
	}
	return nil
}

// specCategories derives the categories of a command missing from
// Redis's table from its Spec: its category, read or write, admin and
// dangerous for Admin, and slow.
func specCategories(s *command.Spec) []string {
	var c []string
	// A command's own category is an ACL category by the same name when
	// Redis has one (keyspace, string, hash, list, ...; not server).
	if name := s.Category.String(); slices.Contains(Categories, name) {
		c = append(c, name)
	}
	if s.Is(command.ReadOnly) {
		c = append(c, "read")
	}
	if s.Is(command.Write) {
		c = append(c, "write")
	}
	if s.Is(command.Admin) {
		c = append(c, "admin", "dangerous")
	}
	c = append(c, "slow")
	slices.SortFunc(c, func(a, b string) int { return slices.Index(Categories, a) - slices.Index(Categories, b) })
	return c
}

// inCategory reports whether the command full is in cat, by itself or,
// for a subcommand, by its parent (as Redis sets a container's
// subcommands with it).
func inCategory(full, cat string) bool {
	if slices.Contains(CategoriesOf(full), cat) {
		return true
	}
	if parent, _, ok := strings.Cut(full, "|"); ok {
		return slices.Contains(CategoriesOf(parent), cat)
	}
	return false
}

// CommandsIn lists the commands (full names, sorted) of a category, as
// ACL CAT CATEGORY does; ok is false for an unknown category.
func CommandsIn(cat string) (names []string, ok bool) {
	cat = strings.ToLower(cat)
	if !slices.Contains(Categories, cat) {
		return nil, false
	}
	seen := map[string]bool{}
	for _, s := range command.Specs() {
		if slices.Contains(CategoriesOf(s.Name), cat) {
			seen[s.Name] = true
		}
	}
	for full, cats := range redisCommands {
		parent, _, isSub := strings.Cut(full, "|")
		if isSub && Known(parent) && slices.Contains(cats, cat) {
			seen[full] = true
		}
	}
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, true
}
