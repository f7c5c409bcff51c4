package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TxOption changes how EnqueueTx and EnqueueBatchTx call wasmq's SQL
// functions.
type TxOption func(*txOptions)

type txOptions struct{ schema string }

// Schema names the PostgreSQL schema of wasmq's tables and functions
// (default "wasmq", as in docs/sql.md).
func Schema(name string) TxOption { return func(o *txOptions) { o.schema = name } }

func qualified(opts []TxOption, fn string) string {
	o := txOptions{schema: "wasmq"}
	for _, f := range opts {
		f(&o)
	}
	return pgx.Identifier{o.schema, fn}.Sanitize()
}

// EnqueueTx creates a job inside the caller's transaction, when the
// application and wasmq share a PostgreSQL database (docs/sql.md): the job
// exists, and the scheduler is woken, only if tx commits. The tenant is
// the one the transaction's role is mapped to (sql_roles). It returns the
// job's uuid, or that of the waiting job with the same identity key.
// Refusals are *Error with the Status and Code the HTTP API would answer
// and the Field at fault; tx is then aborted, as after any SQL error
// (use a savepoint to carry on).
func EnqueueTx(ctx context.Context, tx pgx.Tx, req JobRequest, opts ...TxOption) (string, error) {
	if req.Ref != "" {
		return "", &Error{Status: 400, Code: "invalid_argument", Message: "ref is for entries of a batch (EnqueueBatchTx)", Field: "ref"}
	}
	args, err := json.Marshal(orEmpty(req.Args))
	if err != nil {
		return "", fmt.Errorf("wasmq: args: %w", err)
	}
	kwargs, err := json.Marshal(orEmptyMap(req.Kwargs))
	if err != nil {
		return "", fmt.Errorf("wasmq: kwargs: %w", err)
	}
	fn := req.Func
	req.Func, req.Args, req.Kwargs = "", nil, nil
	options, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("wasmq: options: %w", err)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(options, &m)
	delete(m, "func") // JobRequest always writes it
	options, _ = json.Marshal(m)
	var id string
	err = tx.QueryRow(ctx, `SELECT `+qualified(opts, "enqueue")+`($1, $2::jsonb, $3::jsonb, $4::jsonb)::text`,
		fn, string(args), string(kwargs), string(options)).Scan(&id)
	if err != nil {
		return "", sqlError(err)
	}
	return id, nil
}

// EnqueueBatchTx creates every job of reqs inside the caller's
// transaction, or none, as POST /v1/jobs:batch does (refs, depends_on on
// refs, one graph); it returns their uuids in order.
func EnqueueBatchTx(ctx context.Context, tx pgx.Tx, reqs []JobRequest, opts ...TxOption) ([]string, error) {
	body, err := json.Marshal(reqs)
	if err != nil {
		return nil, fmt.Errorf("wasmq: jobs: %w", err)
	}
	var ids []string
	if err := tx.QueryRow(ctx, `SELECT `+qualified(opts, "enqueue_batch")+`($1::jsonb)::text[]`, string(body)).Scan(&ids); err != nil {
		return nil, sqlError(err)
	}
	return ids, nil
}

func orEmpty(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func orEmptyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// sqlError turns wasmq's SQL errors (docs/sql.md, Errors) into the
// *Error the HTTP API would have answered.
func sqlError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("wasmq: enqueue: %w", err)
	}
	e := &Error{Message: pe.Message, Field: pe.ColumnName}
	switch pe.Code {
	case "22023":
		e.Status, e.Code = 422, "invalid_argument"
	case "42704":
		e.Status, e.Code = 404, "not_found"
	case "53400":
		e.Status, e.Code = 429, "quota_exceeded"
	case "42501":
		e.Status, e.Code = 403, "permission_denied"
	default:
		return fmt.Errorf("wasmq: enqueue: %w", err)
	}
	return e
}
