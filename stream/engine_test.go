package stream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/txpipe/txpipe"
)

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ClusterID(EmbeddedClusterID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestMasterFollowerMissesNothing: a limit published between the read of
// the master data to its end and the start of the follower is applied
// (the follower continues from exactly the offsets read).
func TestMasterFollowerMissesNothing(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	topics := TopicsFor("mf")
	ctx := context.Background()
	card := txpipe.Card{ID: 7, CustomerID: 1, CreditLimit: 100000}
	if err := PublishMaster(ctx, brokers, topics, []txpipe.Card{card}, []txpipe.Customer{{ID: 1, Address: "x NY 12207"}}); err != nil {
		t.Fatal(err)
	}
	defer func() { testHookMasterRead = nil }()
	testHookMasterRead = func() {
		card.CreditLimit = 500
		if err := PublishMaster(ctx, brokers, topics, []txpipe.Card{card}, nil); err != nil {
			t.Error(err)
		}
	}
	f, err := followMaster(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, topics, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if c, _ := f.view.get().Card(7); c.CreditLimit == 500 {
			return
		}
		if time.Now().After(deadline) {
			c, _ := f.view.get().Card(7)
			t.Fatalf("the limit published while the follower started was never applied: limit %s", c.CreditLimit)
		}
	}
}

// TestFencingFailureIsFatal: a process that cannot fence the previous
// owner of its partitions must not judge them: the engine stops with a
// fatal error naming the fencing.
func TestFencingFailureIsFatal(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	topics := TopicsFor("fence")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := NewValidator(ctx, ValidatorConfig{Brokers: brokers, Topics: topics, Group: "fence", Instance: "f1", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.cfg.FenceBound = 2 * time.Second
	// Every InitProducerID fails, with an error the client retries itself
	// until its own timeout, then again through the engine's retry.
	c.ControlKey(int16(kmsg.InitProducerID), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil, true
	})
	err = v.Run(ctx)
	if err == nil || !errors.Is(err, errFatal) || !strings.Contains(err.Error(), "fence") {
		t.Fatalf("Run = %v, want a fatal error about fencing", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run only ended with the test's deadline")
	}
}

// TestPingIsBounded: a broker address where something accepts and never
// answers, or answers as something else, or nothing listens, fails within
// the bound with an error naming it.
func TestPingIsBounded(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never answered
			mu.Unlock()
		}
	}()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("-ERR unknown command 'ApiVersions'\r\n-ERR\r\n-ERR\r\n"))
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, addr := range []string{silent.Addr().String(), other.Addr().String(), closedAddr} {
		start := time.Now()
		err := Ping(context.Background(), []string{addr}, 2*time.Second)
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: Ping = %v, want an error naming the address", addr, err)
		}
		if d := time.Since(start); d > 30*time.Second { // a bound on a hang, not a speed
			t.Errorf("%s: Ping took %s with a 2 s bound", addr, d)
		}
	}
	c := newCluster(t)
	if err := Ping(context.Background(), c.ListenAddrs(), 10*time.Second); err != nil {
		t.Fatalf("a real broker: %v", err)
	}
}
