package store

import (
	"encoding/base64"
	"fmt"

	"github.com/wasmq/wasmq/abi"
)

// EncodeCursor, DecodeCursor: a cursor is the (date_created, seq) of the last job of a page: paging by
// key, not offset, so jobs inserted meanwhile neither repeat nor vanish.
func EncodeCursor(createdMicros, seq int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d", createdMicros, seq))
}

func DecodeCursor(c string) (int64, int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	var created, seq int64
	if err == nil {
		_, err = fmt.Sscanf(string(b), "%d:%d", &created, &seq)
	}
	if err != nil {
		return 0, 0, &abi.FieldError{Field: "cursor", Msg: "not a cursor returned by a previous page", Err: abi.ErrInvalid}
	}
	return created, seq, nil
}

// PageLimit is the page size of a Filter.Limit: 50 by default, 1000 at most.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 1000:
		return 1000
	}
	return n
}
