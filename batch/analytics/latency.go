package analytics

import (
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
)

// LatencyHist is a log-linear histogram of latencies in microseconds:
// exact below 1024 µs, then 512 buckets per power of two (a relative
// resolution of 0.2 %). Its memory is bounded (a few thousand buckets),
// not by the number of values. The zero value is empty and ready. The
// batch's KPI view and serve's /api/latency both count with it.
type LatencyHist struct {
	N       int64 // values added
	buckets map[int64]int64
}

func latencyBucket(us int64) int64 {
	if us < 1024 {
		return us
	}
	e := int64(bits.Len64(uint64(us))) - 10
	return e<<10 | us>>e
}

// bucketLow is the smallest value of a bucket.
func bucketLow(b int64) int64 {
	if b < 1024 {
		return b
	}
	e := b >> 10
	return (b & 1023) << e
}

// Add counts one latency (a negative one as 0: clocks apart).
func (h *LatencyHist) Add(us int64) {
	us = max(us, 0)
	if h.buckets == nil {
		h.buckets = map[int64]int64{}
	}
	h.buckets[latencyBucket(us)]++
	h.N++
}

// Quantile returns the lower bound of the bucket holding the value of
// rank ⌈q/1000 × n⌉ (nearest rank; 1000 is the maximum), and false when
// the histogram is empty.
func (h *LatencyHist) Quantile(perMille int64) (int64, bool) {
	if h.N == 0 {
		return 0, false
	}
	rank := max((perMille*h.N+999)/1000, 1)
	keys := make([]int64, 0, len(h.buckets))
	for k := range h.buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var seen int64
	for _, k := range keys {
		seen += h.buckets[k]
		if seen >= rank {
			return bucketLow(k), true
		}
	}
	return bucketLow(keys[len(keys)-1]), true
}

// Latencies turns histograms by event type into stats, in type order.
func Latencies(hists map[string]*LatencyHist) []txpipe.LatencyStats {
	out := []txpipe.LatencyStats{}
	for typ, h := range hists {
		s := txpipe.LatencyStats{Type: typ, Count: h.N}
		for _, p := range []struct {
			q   int64
			dst *time.Duration
		}{{500, &s.P50}, {950, &s.P95}, {990, &s.P99}, {1000, &s.Max}} {
			us, _ := h.Quantile(p.q)
			*p.dst = time.Duration(us) * time.Microsecond
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b txpipe.LatencyStats) int { return strings.Compare(a.Type, b.Type) })
	return out
}
