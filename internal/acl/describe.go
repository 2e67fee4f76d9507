package acl

import "strings"

// Flags are the user's flags as ACL GETUSER lists them, in Redis's order.
func (u *User) Flags() []string {
	var f []string
	if u.On {
		f = append(f, "on")
	} else {
		f = append(f, "off")
	}
	if u.NoPass {
		f = append(f, "nopass")
	}
	if u.SkipSanitize {
		f = append(f, "skip-sanitize-payload")
	} else {
		f = append(f, "sanitize-payload")
	}
	return f
}

// CommandRules is the "commands" field of ACL GETUSER: +@all or -@all,
// then the user's other command rules in order.
func (u *User) CommandRules() string {
	base := "-@all"
	if u.AllCommands {
		base = "+@all"
	}
	if len(u.Rules) == 0 {
		return base
	}
	return base + " " + strings.Join(u.Rules, " ")
}

// KeyRules is the "keys" field of ACL GETUSER.
func (u *User) KeyRules() string {
	if u.AllKeys {
		return "~*"
	}
	parts := make([]string, len(u.Keys))
	for i, k := range u.Keys {
		parts[i] = k.String()
	}
	return strings.Join(parts, " ")
}

// ChannelRules is the "channels" field of ACL GETUSER.
func (u *User) ChannelRules() string {
	if u.AllChannels {
		return "&*"
	}
	parts := make([]string, len(u.Channels))
	for i, c := range u.Channels {
		parts[i] = "&" + c
	}
	return strings.Join(parts, " ")
}

// String renders a key pattern as a rule.
func (k KeyPattern) String() string {
	switch k.Perm {
	case permRead:
		return "%R~" + k.Pattern
	case permWrite:
		return "%W~" + k.Pattern
	}
	return "~" + k.Pattern
}

// Describe renders the user as ACL LIST shows it (without "user NAME"):
// flags, password hashes, keys, channels, commands. Applied to New(name)
// it gives back the same user.
func (u *User) Describe() string {
	var b strings.Builder
	for _, f := range u.Flags() {
		b.WriteString(f)
		b.WriteByte(' ')
	}
	for _, p := range u.Passwords {
		b.WriteByte('#')
		b.WriteString(p)
		b.WriteByte(' ')
	}
	if u.AllKeys {
		b.WriteString("~* ")
	} else {
		for _, k := range u.Keys {
			b.WriteString(k.String())
			b.WriteByte(' ')
		}
	}
	if u.AllChannels {
		b.WriteString("&* ")
	} else {
		b.WriteString("resetchannels ")
		for _, c := range u.Channels {
			b.WriteByte('&')
			b.WriteString(c)
			b.WriteByte(' ')
		}
	}
	b.WriteString(u.CommandRules())
	return b.String()
}

// Line is the user's line in ACL LIST.
func (u *User) Line() string { return "user " + u.Name + " " + u.Describe() }

// Parse rebuilds a user from its description.
func Parse(name, description string) (*User, error) {
	return New(name).ApplyStrings(strings.Fields(description)...)
}
