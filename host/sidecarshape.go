package host

import "fmt"

// Why a sidecar's shape is checked before it is parsed: the TOML parser's
// time grows as the square of a document's nesting: 2,000 inline tables
// inside each other (8 KB) took 1.5 s, a key of 2,000 dotted parts (4 KB)
// 0.27 s, and a sidecar is a tenant's upload (PUT /v1/plugins/{name}/config)
// of up to body_limit, 8 MiB. Real sidecars are a few hundred bytes, two
// or three levels deep.
const (
	maxSidecarBytes    = 256 << 10
	maxSidecarDepth    = 32 // tables and arrays inside each other
	maxSidecarKeyParts = 32 // parts of one dotted key
)

// checkSidecarShape refuses a sidecar larger, deeper or with longer keys
// than the bounds above, reading it as TOML's lexer does: strings and
// comments hide brackets and dots.
func checkSidecarShape(b []byte) error {
	if len(b) > maxSidecarBytes {
		return fmt.Errorf("is %d bytes, over the %d a sidecar may take", len(b), maxSidecarBytes)
	}
	_, _, err := sidecarShape(b, maxSidecarDepth, maxSidecarKeyParts)
	return err
}

// sidecarShape returns the deepest nesting and the most key parts it
// read in b, stopping with an error past maxDepth or maxParts.
func sidecarShape(b []byte, maxDepth, maxParts int) (deepest, mostParts int, err error) {
	depth, parts, line := 0, 1, 1
	defer func() { mostParts = max(mostParts, parts) }()
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\n':
			line++
			mostParts = max(mostParts, parts)
			parts = 1
		case '#':
			for i+1 < len(b) && b[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			end, lines := skipTOMLString(b, i)
			i, line = end, line+lines
		case '[', '{':
			if depth++; depth > maxDepth {
				return depth, parts, fmt.Errorf("line %d: tables and arrays nest more than %d deep", line, maxDepth)
			}
			deepest, mostParts = max(deepest, depth), max(mostParts, parts)
			parts = 1
		case ']', '}', '=', ',':
			if c == ']' || c == '}' {
				depth = max(depth-1, 0)
			}
			mostParts = max(mostParts, parts)
			parts = 1
		case '.':
			// A key's parts; a value has at most one dot here (1.5,
			// a date's fraction), as a separator comes before the next.
			if parts++; parts > maxParts {
				return deepest, parts, fmt.Errorf("line %d: a key has more than %d dotted parts", line, maxParts)
			}
		}
	}
	return deepest, mostParts, nil
}

// skipTOMLString returns the index of the last byte of the string opening
// at b[i] (basic or literal, single or multi-line, as TOML closes them:
// a closing triple quote may be followed by up to two more quotes) and
// the newlines it holds. An unclosed string runs to its line's end (or
// the text's, for a multi-line one): TOML refuses it anyway.
func skipTOMLString(b []byte, i int) (end, lines int) {
	q := b[i]
	triple := i+2 < len(b) && b[i+1] == q && b[i+2] == q
	j := i + 1
	if triple {
		j = i + 3
	}
	for ; j < len(b); j++ {
		switch c := b[j]; {
		case c == '\\' && q == '"':
			if j+1 < len(b) && b[j+1] == '\n' {
				lines++
			}
			j++
		case c == '\n':
			if !triple {
				return j - 1, lines
			}
			lines++
		case c == q && !triple:
			return j, lines
		case c == q && j+2 < len(b) && b[j+1] == q && b[j+2] == q:
			j += 2
			for k := 0; k < 2 && j+1 < len(b) && b[j+1] == q; k++ {
				j++
			}
			return j, lines
		}
	}
	return len(b) - 1, lines
}
