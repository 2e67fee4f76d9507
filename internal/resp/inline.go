package resp

// splitInline is a port of Redis's sdssplitargs, so that an inline command
// typed into telnet or redis-cli's raw mode splits exactly as Redis splits
// it, quirks included:
//
//   - blanks between tokens are C isspace (space, \t, \n, \v, \f, \r), but an
//     unquoted token ends only at space, \t, \n or \r, so \v and \f inside a
//     token are kept;
//   - a quote may open in the middle of a token (a"b c" is one token, "ab c");
//   - a closing quote must be followed by a blank or the end of the line;
//   - inside "...": \xHH, \n, \r, \t, \b, \a, and \<c> for any other c gives
//     c; inside '...': only \' is an escape.
//
// line must already be cut at its first NUL, which is where Redis's C string
// ends. Tokens are unescaped in place, which is safe because the write
// position never passes the read position. It appends each token's start and
// end offsets to offs; ok is false for unbalanced quotes.
func splitInline(line []byte, offs []int) (_ []int, ok bool) {
	n := len(line)
	at := func(i int) byte {
		if i < n {
			return line[i]
		}
		return 0
	}
	i, w := 0, 0
	for {
		for i < n && isSpace(line[i]) {
			i++
		}
		if i == n {
			return offs, true
		}
		start := w
		inq, insq, done := false, false, false
		for !done {
			c := at(i)
			switch {
			case inq:
				switch {
				case c == '\\' && at(i+1) == 'x' && isHex(at(i+2)) && isHex(at(i+3)):
					line[w] = unhex(line[i+2])<<4 | unhex(line[i+3])
					w++
					i += 3
				case c == '\\' && i+1 < n:
					i++
					line[w] = unescape(line[i])
					w++
				case c == '"':
					if i+1 < n && !isSpace(line[i+1]) {
						return offs, false
					}
					done = true
				case i >= n:
					return offs, false
				default:
					line[w] = c
					w++
				}
			case insq:
				switch {
				case c == '\\' && at(i+1) == '\'':
					i++
					line[w] = '\''
					w++
				case c == '\'':
					if i+1 < n && !isSpace(line[i+1]) {
						return offs, false
					}
					done = true
				case i >= n:
					return offs, false
				default:
					line[w] = c
					w++
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					line[w] = c
					w++
				}
			}
			if i < n {
				i++
			}
		}
		offs = append(offs, start, w)
	}
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}
