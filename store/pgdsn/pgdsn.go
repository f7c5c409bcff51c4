// Package pgdsn edits a PostgreSQL connection string in either of its
// forms (a postgres:// URL or keyword/value pairs) without re-encoding
// what it does not touch.
//
// Re-encoding a URL's query with net/url writes a space as '+', which
// pgx reads back as a '+': `options=-c%20statement_timeout%3D5s` became
// the parameter "+statement_timeout" and the connection was refused.
package pgdsn

import (
	"net/url"
	"strings"
)

// WithParam returns dsn with the connection parameter key set to value
// (search_path, application_name, …), replacing one already there. A
// URL's other query pairs are kept byte for byte; keyword/value pairs get
// the key appended, which pgx reads as overriding an earlier one.
func WithParam(dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return withURLParam(dsn, key, value)
	}
	sep := " "
	if strings.TrimSpace(dsn) == "" {
		sep = ""
	}
	return dsn + sep + key + "=" + quoteValue(value)
}

func withURLParam(dsn, key, value string) string {
	base, fragment, _ := strings.Cut(dsn, "#")
	base, query, _ := strings.Cut(base, "?")
	var pairs []string
	for _, p := range strings.Split(query, "&") {
		if p == "" {
			continue
		}
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == key {
			continue
		}
		pairs = append(pairs, p)
	}
	pairs = append(pairs, escape(key)+"="+escape(value))
	out := base + "?" + strings.Join(pairs, "&")
	if fragment != "" {
		out += "#" + fragment
	}
	return out
}

// escape percent-encodes a query component, a space as %20: pgx decodes
// the query as a path would, and a '+' would stay a '+'.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// quoteValue quotes a keyword/value string's value when it needs it: an
// empty value, or one with a space, a quote or a backslash.
func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// OptionSettings returns the server settings a connection's `options`
// parameter (or PGOPTIONS) sets, by name: "-c name=value", "-cname=value"
// and "--name=value", separated by spaces, a backslash escaping the
// character after it, as libpq and the server read them. Names come back
// as the server reads them, lower case with '-' for '_'; other switches
// are skipped.
func OptionSettings(options string) map[string]string {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(options); i++ {
		c := options[i]
		switch {
		case c == '\\' && i+1 < len(options):
			i++
			w.WriteByte(options[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	settings := map[string]string{}
	set := func(pair string) {
		name, value, ok := strings.Cut(pair, "=")
		if ok && name != "" {
			settings[strings.ToLower(strings.ReplaceAll(name, "-", "_"))] = value
		}
	}
	for i := 0; i < len(words); i++ {
		switch word := words[i]; {
		case word == "-c" && i+1 < len(words):
			i++
			set(words[i])
		case strings.HasPrefix(word, "--"):
			set(word[2:])
		case strings.HasPrefix(word, "-c"):
			set(word[2:])
		}
	}
	return settings
}
