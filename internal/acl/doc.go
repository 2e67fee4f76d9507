// Package acl is Kintsu's model of Redis 6/7 access control lists: users
// (on/off, SHA-256 password hashes or nopass, command rules, key and
// channel patterns), the parsing of ACL SETUSER rules, the rendering of
// ACL GETUSER, ACL LIST and ACL CAT, and the permission check every client
// command passes at the edge (Allowed). It is pure: no I/O, no clock, no
// network; the edge keeps the users of the metadata group in a Table and
// words this package's typed errors as Redis does.
//
// Command rules follow Redis's model exactly: a user starts from all
// commands (+@all) or none (-@all), then applies its other command rules
// in order, the last rule naming a command (directly, by its parent, or
// by one of its categories) deciding. Adding a rule removes an earlier
// rule of the same name, and +@all / -@all clear the list, so the rules
// a user shows are always the shortest list that gives its permissions
// in the order they were given, as Redis shows them.
//
// Invariants:
//   - Deterministic: applying the same rules to the same user gives the
//     same user on every node; a user's description (Describe) applied to
//     a fresh user (New) gives back an equal user, so the metadata group
//     stores users as their descriptions.
//   - A SETUSER is all or nothing: on any bad rule the user is unchanged
//     and the error names the rule, in Redis's words.
//   - No plaintext password is kept: '>pass' is hashed (SHA-256, hex) when
//     parsed, and comparisons of hashes take the same time whatever they
//     hold.
//   - AUTH, HELLO and QUIT are allowed to every user (Redis's no-auth
//     commands); every other command needs a rule allowing it, and each
//     of its keys a pattern allowing the access it makes.
package acl
