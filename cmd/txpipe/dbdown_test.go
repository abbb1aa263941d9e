package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
)

// forward accepts on ln and pipes each connection to target until ln closes.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer d.Close()
			go io.Copy(d, c)
			io.Copy(c, d)
		}()
	}
}

// TestConsumeJudgesWhileDatabaseIsDown starts `txpipe consume` with a
// database that does not answer: the validator judges everything anyway,
// and once the database is back the sink writes every row.
func TestConsumeJudgesWhileDatabaseIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		db := mysqltest.NewDatabase(t)
		bin := buildBinary(t)
		brokers := b.Addrs
		topics, group := b.Topics(t, "down"), kafkatest.Name("down")
		st := publish(t, brokers, topics, genDataset(t, 5000, 0))

		// A port where nothing answers yet.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()

		cmd := exec.Command(bin, "consume", "--instance", "down-1", "--until-idle", "2s")
		cmd.Env = append(append(os.Environ(), kafkaEnv(b, topics, group)...),
			"TXPIPE_RESULTS="+t.TempDir(),
			"DB_HOST=127.0.0.1", "DB_PORT="+strconv.Itoa(port), "DB_USER="+db.User, "DB_PASSWORD="+db.Passwd, "DB_NAME="+db.DBName,
		)
		out := &syncBuffer{} // written by the process's output copier, read by the test
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		defer cmd.Process.Kill()

		// Every transaction is judged and committed with the database down.
		deadline := time.Now().Add(60 * time.Second)
		for groupLag(t, brokers, group, topics.Input) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the validator did not judge everything while the database was down:\n%s", out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		select {
		case err := <-done:
			t.Fatalf("consume exited while the database was down: %v\n%s", err, out.String())
		default:
		}

		// The database comes back on the same address.
		ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go forward(ln, db.Addr)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("consume: %v\n%s", err, out.String())
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("consume did not finish once the database was back:\n%s", out.String())
		}
		var n int64
		if err := openSQL(t, db.FormatDSN()).QueryRowContext(context.Background(), "SELECT COUNT(*) FROM stream_transactions").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != st.Records {
			t.Fatalf("MySQL has %d stream rows, want %d\n%s", n, st.Records, out.String())
		}
		if o := out.String(); !strings.Contains(o, "database unreachable") && !strings.Contains(o, "unavailable, retrying with backoff") || !strings.Contains(o, "127.0.0.1:"+strconv.Itoa(port)) {
			t.Errorf("the outage was not reported with the address:\n%s", o)
		}
	})
}
