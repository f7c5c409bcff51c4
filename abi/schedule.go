package abi

import "fmt"

// MaxScheduleNameLen bounds a schedule's name, in bytes.
const MaxScheduleNameLen = 64

// CheckScheduleName enforces the grammar of a schedule's name, unique per
// tenant: 1 to 64 ASCII letters, digits, '_', '-' or '.', starting with a
// letter or digit. A name is a path segment of the API
// (/v1/schedules/{name}:pause), so ':' and '/' are out; so are spaces,
// which make names hard to pass on a command line.
func CheckScheduleName(name string) error {
	bad := func(format string, a ...any) error {
		return &FieldError{Field: "name", Msg: fmt.Sprintf(format, a...), Err: ErrInvalid}
	}
	if name == "" {
		return bad("is required")
	}
	if len(name) > MaxScheduleNameLen {
		return bad("at most %d bytes (this one has %d)", MaxScheduleNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return bad("%q must start with a letter or a digit", name)
		}
		if !alnum && c != '_' && c != '-' && c != '.' {
			return bad("%q may hold only letters, digits, '_', '-' and '.'", name)
		}
	}
	return nil
}
