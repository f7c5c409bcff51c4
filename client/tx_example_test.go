package client_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wasmq/wasmq/client"
)

// The job is created in the application's own transaction: it exists,
// and runs, only if the invoice is saved (docs/sql.md). The application
// connects as a role listed in its tenant's sql_roles.
func ExampleEnqueueTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://odoo@db/erp")
	if err != nil {
		panic(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		panic(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE account_move SET state = 'posted' WHERE id = $1`, 42); err != nil {
		panic(err)
	}
	id, err := client.EnqueueTx(ctx, tx, client.JobRequest{
		Func: "invoice.total", Args: []any{1200, 350}, Channel: "mail", IdentityKey: "account.move-42-total",
	})
	var refused *client.Error
	if errors.As(err, &refused) {
		fmt.Println("refused:", refused.Status, refused.Field, refused.Message) // the transaction is aborted
		return
	}
	if err != nil {
		panic(err)
	}
	if err := tx.Commit(ctx); err != nil {
		panic(err)
	}
	fmt.Println("job", id)
}
