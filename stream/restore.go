package stream

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// restore builds the tasks of partitions from the state topic: every state
// record goes to the task of its partition and operator (by the key's
// prefix), in offset order; then each task catches up (Restored), the
// partitions in parallel.
func (e *Engine) restore(ctx context.Context, parts []int32) ([]*partition, error) {
	byID := map[int32]*partition{}
	from := map[int32]int64{}
	for _, id := range parts {
		p := &partition{id: id}
		for _, op := range e.cfg.Operators {
			p.tasks = append(p.tasks, op.NewTask(id))
		}
		byID[id] = p
		from[id] = 0
	}
	prefixes := make([][]byte, len(e.cfg.Operators))
	for i, op := range e.cfg.Operators {
		prefixes[i] = []byte(op.Name() + "/")
	}
	var bad error
	_, err := readRange(ctx, e.base, e.cfg.StateTopic, from, false, func(r *kgo.Record) {
		if bad != nil {
			return
		}
		for i, prefix := range prefixes {
			if bytes.HasPrefix(r.Key, prefix) {
				if err := byID[r.Partition].tasks[i].Restore(r.Key[len(prefix):], r.Value); err != nil {
					bad = fmt.Errorf("state record %s/%d/%d (key %q): %w", r.Topic, r.Partition, r.Offset, r.Key, err)
				}
				return
			}
		}
		if name, _, ok := bytes.Cut(r.Key, []byte("/")); ok && slices.Contains(knownOperators, string(name)) {
			return // an operator of this version this run does not run (consume --alerts=false)
		}
		bad = fmt.Errorf("state record %s/%d/%d: key %q belongs to no operator of this version (a state topic of an older txpipe? `txpipe reset` starts the dev state over)", r.Topic, r.Partition, r.Offset, r.Key)
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.cfg.StateTopic, err)
	}
	out := make([]*partition, 0, len(parts))
	errs := make([]error, len(parts))
	sem := make(chan struct{}, e.workers)
	var wg sync.WaitGroup
	for i, id := range parts {
		p := byID[id]
		out = append(out, p)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, t := range p.tasks {
				if err := t.Restored(ctx, partReader{base: e.base, partition: id}); err != nil {
					errs[i] = fmt.Errorf("partition %d: %w", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// partReader reads one partition of topics for a restoring task.
type partReader struct {
	base      []kgo.Opt
	partition int32
}

func (r partReader) Read(ctx context.Context, topic string, from int64, strict bool, fn func(*kgo.Record) error) error {
	var ferr error
	_, err := readRange(ctx, r.base, topic, map[int32]int64{r.partition: from}, strict, func(rec *kgo.Record) {
		if ferr == nil {
			ferr = fn(rec)
		}
	})
	if err == nil {
		err = ferr
	}
	return err
}
