package sqlite

import (
	"context"
	"errors"
	"syscall"

	"modernc.org/sqlite"
)

// SQLite's primary result codes of a file that cannot be written now.
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteNoMem    = 7
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// Unavailable: the database file cannot be written or read now (the disk
// full or failing, the file read-only or locked past the busy timeout),
// whatever the request.
func (s *driver) Unavailable(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteNoMem, sqliteReadOnly, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return true
		}
		return false
	}
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS)
}

// InDoubt: never. SQLite commits in this process: a commit that fails
// has rolled back (its journal), and one that returns has committed.
func (s *driver) InDoubt(error) bool { return false }

// Ended: a transaction of this process has always ended when its call
// returned.
func (s *driver) Ended(context.Context, error) error { return nil }
