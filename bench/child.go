package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// childEnv is the environment of a txpipe child: the parent's, without any
// txpipe setting, plus env. The child runs in an empty directory, so no
// .env file is read either.
func (b *bencher) childEnv(env map[string]string) ([]string, error) {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KAFKA_") || strings.HasPrefix(k, "DB_") || strings.HasPrefix(k, "TXPIPE_") || k == "CONSUMER_TIMEOUT_MS" {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out, nil
}

// dbEnv is the DB_* environment of a database.
func dbEnv(d *database, env map[string]string) error {
	if d.cfg.Net != "" && d.cfg.Net != "tcp" {
		return fmt.Errorf("the txpipe child needs a TCP database address, got %s %s", d.cfg.Net, d.cfg.Addr)
	}
	host, port, err := net.SplitHostPort(d.cfg.Addr)
	if err != nil {
		host, port = d.cfg.Addr, "3306"
	}
	env["DB_HOST"], env["DB_PORT"], env["DB_USER"], env["DB_PASSWORD"], env["DB_NAME"] = host, port, d.cfg.User, d.cfg.Passwd, d.name
	return nil
}

// child runs the txpipe binary and returns its stdout, its peak RSS in MiB
// and how long it ran. The peak RSS is the child's VmHWM, sampled while it
// runs: its rusage maxrss would include the bench process's own RSS (see
// rusageMaxRSSMiB).
func (b *bencher) child(ctx context.Context, env map[string]string, args ...string) (string, float64, time.Duration, error) {
	dir, err := os.MkdirTemp(b.tmp, "child-")
	if err != nil {
		return "", 0, 0, err
	}
	environ, err := b.childEnv(env)
	if err != nil {
		return "", 0, 0, err
	}
	cmd := exec.CommandContext(ctx, b.o.Binary, args...)
	cmd.Dir = dir
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	b.log.Info("bench: child process", "args", args)
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return "", 0, 0, fmt.Errorf("txpipe %s: %w", strings.Join(args, " "), err)
	}
	stop := watchPeakRSS(cmd.Process.Pid)
	err = cmd.Wait()
	took := time.Since(begin)
	rss := stop()
	if err != nil {
		return stdout.String(), 0, took, fmt.Errorf("txpipe %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	b.log.Info("bench: child process done", "args", args, "took", took.Round(time.Millisecond), "peak_rss_mib", fmt.Sprintf("%.1f", rss),
		"rusage_maxrss_mib", fmt.Sprintf("%.1f", rusageMaxRSSMiB(cmd.ProcessState)))
	return stdout.String(), rss, took, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var consumeLine = regexp.MustCompile(`consume: (\d+) judged, (\d+) rejected, (\d+) written`)

// consumeChild runs `txpipe consume --until-idle 3s --instance bench` on a
// fresh copy of the input (and, with MySQL, a fresh database) and records
// its peak RSS.
func (b *bencher) consumeChild(ctx context.Context, rep *Report) error {
	if b.o.Binary == "" {
		b.log.Info("bench: no txpipe binary: RSS not measured")
		return nil
	}
	topics, err := b.copyInput(ctx, "child")
	if err != nil {
		return err
	}
	env := map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(b.brokers, ","),
		"KAFKA_COMPRESSION":       b.o.Compression,
		"KAFKA_TOPIC":             topics.Input,
		"KAFKA_GROUP_ID":          b.topic("child"),
		"TXPIPE_RESULTS":          filepath.Join(b.tmp, "child-results"),
	}
	if b.o.MySQL != nil {
		if b.childDB, err = b.newDatabase(ctx); err != nil {
			return err
		}
		if err := dbEnv(b.childDB, env); err != nil {
			return err
		}
	}
	out, rss, took, err := b.child(ctx, env, "consume", "--until-idle", "3s", "--instance", "bench")
	if err != nil {
		return err
	}
	m := consumeLine.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("txpipe consume printed no summary: %q", tail(out, 500))
	}
	judged, _ := strconv.ParseInt(m[1], 10, 64)
	rejected, _ := strconv.ParseInt(m[2], 10, 64)
	written, _ := strconv.ParseInt(m[3], 10, 64)
	if judged+rejected != b.rows || written != b.rows {
		return fmt.Errorf("txpipe consume: %d judged, %d rejected, %d written, want %d", judged, rejected, written, b.rows)
	}
	rep.ConsumeRSSMiB, rep.ConsumeChild = rss, took
	rep.Validate.RSSMiB = rss
	if rep.Sink.Skipped == "" {
		rep.Sink.RSSMiB = rss
	}
	b.deleteTopics(ctx, topics.Input, topics.Validated, topics.DLQ, topics.State)
	return nil
}

var batchRows = regexp.MustCompile(`batch: (\d+) rows`)

// batchChild runs `txpipe batch --no-publish` on the consume child's
// database, with the master data loaded, without and with analytics, and
// records their peak RSS.
func (b *bencher) batchChild(ctx context.Context, rep *Report) error {
	if b.o.Binary == "" || b.childDB == nil {
		return nil
	}
	if err := b.childDB.db.LoadMaster(ctx, b.master); err != nil {
		return err
	}
	env := map[string]string{"TXPIPE_RESULTS": filepath.Join(b.tmp, "child-batch-results")}
	if err := dbEnv(b.childDB, env); err != nil {
		return err
	}
	for _, analytics := range []bool{false, true} {
		out, rss, _, err := b.child(ctx, env, "batch", "--no-publish", "--analytics="+strconv.FormatBool(analytics))
		if err != nil {
			return err
		}
		if m := batchRows.FindStringSubmatch(out); m == nil {
			return fmt.Errorf("txpipe batch printed no summary: %q", tail(out, 500))
		} else if n, _ := strconv.ParseInt(m[1], 10, 64); n != b.val.processed {
			return fmt.Errorf("txpipe batch read %d rows, want %d", n, b.val.processed)
		}
		if analytics {
			rep.AnalyticsRSSMiB, rep.Analytics.RSSMiB = rss, rss
		} else {
			rep.BatchRSSMiB, rep.Batch.RSSMiB = rss, rss
		}
	}
	return nil
}

// startBrokerChild runs the embedded broker as a child process (`txpipe
// dev`, in memory, on a free loopback port), as users run it: the stages
// then never share a heap, or a garbage collector, with the broker. It
// returns the broker's address and a function that stops it.
func (b *bencher) startBrokerChild(ctx context.Context) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	environ, err := b.childEnv(nil)
	if err != nil {
		return "", nil, err
	}
	// No retention: the bench reads back everything it writes.
	cmd := exec.Command(b.o.Binary, "dev", "--port", strconv.Itoa(port), "--data-dir", "", "--retention", "0", "--retention-bytes", "0")
	cmd.Dir = b.tmp
	cmd.Env = environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("txpipe dev: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, stop, nil
		}
		select {
		case err := <-done:
			return "", nil, fmt.Errorf("txpipe dev exited: %v\n%s", err, tail(stderr.String(), 2000))
		case <-ctx.Done():
			stop()
			return "", nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("txpipe dev did not listen on %s in 20 s\n%s", addr, tail(stderr.String(), 2000))
		}
	}
}
