package acl

// Match reports whether s matches the glob pattern p as Redis's
// stringmatchlen does (case-sensitive): '*' any run, '?' one byte,
// '[...]' a class with ranges and '^' negation, '\' escaping the next
// byte. Unlike path.Match it gives '/' no meaning, and it never errors: a
// malformed class matches as Redis's does.
func Match(p, s []byte) bool {
	skip := false
	return match(p, s, 0, &skip)
}

// maxGlobDepth bounds the recursion on '*', so a hostile pattern cannot
// exhaust the stack (Redis bounds it too).
const maxGlobDepth = 1000

// skip, once set, says a '*' failed to match any suffix: a longer match
// by an outer '*' cannot succeed either, which keeps patterns with many
// stars from taking exponential time (as Redis's skipLongerMatches).
func match(p, s []byte, depth int, skip *bool) bool {
	if depth > maxGlobDepth {
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i < len(s); i++ {
				if match(p[1:], s[i:], depth+1, skip) {
					return true
				}
				if *skip {
					return false
				}
			}
			*skip = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			ok := false
			for {
				if len(p) == 0 {
					break
				}
				if p[0] == '\\' && len(p) >= 2 {
					p = p[1:]
					if p[0] == s[0] {
						ok = true
					}
				} else if p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					p = p[2:]
					if s[0] >= lo && s[0] <= hi {
						ok = true
					}
				} else if p[0] == s[0] {
					ok = true
				}
				p = p[1:]
			}
			if len(p) == 0 {
				// An unterminated class: Redis treats the end as ']'.
				p = []byte{']'}
			}
			if not {
				ok = !ok
			}
			if !ok {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
	}
	for len(p) > 0 && p[0] == '*' {
		p = p[1:]
	}
	return len(p) == 0 && len(s) == 0
}
