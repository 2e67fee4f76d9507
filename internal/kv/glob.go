package kv

// Match reports whether s matches the glob pattern p as Redis's
// stringmatchlen does (SCAN's MATCH, KEYS, PSUBSCRIBE): '*' any run, '?'
// any byte, '[...]' a class with ranges, '^' negation and '\' escapes,
// '\' escaping any other byte. Case-sensitive, byte-wise.
//
// Unlike Redis's recursive matcher, it backtracks only to the last '*'
// (the classic two-pointer algorithm), so no pattern can take more than
// O(len(p)·len(s)) steps.
func Match(p, s []byte) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				star, mark = pi, si
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if next, ok := matchClass(p, pi, s[si]); ok {
					pi = next
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == s[si] {
						pi += 2
						si++
						continue
					}
					break
				}
				fallthrough
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		mark++
		pi, si = star, mark
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches c against the class opening at p[i] == '['; it
// returns the index after the class and whether c is in it. An unclosed
// class runs to the pattern's end, as in Redis.
func matchClass(p []byte, i int, c byte) (int, bool) {
	i++
	not := i < len(p) && p[i] == '^'
	if not {
		i++
	}
	match := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			if p[i] == c {
				match = true
			}
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= c && c <= hi {
				match = true
			}
			i += 2
		case p[i] == c:
			match = true
		}
		i++
	}
	if i < len(p) {
		i++ // the ']'
	}
	return i, match != not
}
