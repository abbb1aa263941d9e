package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream/embedded"
)

// TestConsumeStopsOnAPermanentDatabaseError: with a wrong password,
// consume (even without --until-idle) stops at once with the database's
// error, instead of retrying it forever.
func TestConsumeStopsOnAPermanentDatabaseError(t *testing.T) {
	db := mysqltest.NewDatabase(t)
	user, _ := mysqltest.NewUser(t)
	b, err := embedded.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host, port, _ := strings.Cut(db.Addr, ":")
	t.Chdir(t.TempDir()) // no .env here
	for k, v := range map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(b.Addrs(), ","), "KAFKA_TOPIC": "perm", "KAFKA_GROUP_ID": "perm",
		"DB_HOST": host, "DB_PORT": port, "DB_USER": user, "DB_PASSWORD": "wrong", "DB_NAME": db.DBName,
		"TXPIPE_RESULTS": t.TempDir(),
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // far above what it takes
	defer cancel()
	root := newRoot()
	root.SetArgs([]string{"consume", "--instance", "perm-1", "--memory-limit", "0"})
	root.SetOut(&bytes.Buffer{})
	err = root.ExecuteContext(ctx)
	if ctx.Err() != nil {
		t.Fatal("consume did not stop on a wrong password")
	}
	if !mysqlstore.IsPermanent(err) || !strings.Contains(err.Error(), "mysql "+db.Addr+"/"+db.DBName+": access denied: check DB_USER and DB_PASSWORD") {
		t.Fatalf("consume = %v", err)
	}
}
