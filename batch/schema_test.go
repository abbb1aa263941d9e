package batch

import (
	"testing"

	"github.com/txpipe/txpipe"
)

func TestCardIndex(t *testing.T) {
	for name, ids := range map[string][]int64{
		"dense":  {3, 1, 7, 2},
		"sparse": {5, 1 << 40, 9, 77777777},
	} {
		cards := make([]txpipe.Card, len(ids))
		for i, id := range ids {
			cards[i].ID = id
		}
		x := newCardIndex(cards)
		if (x.dense != nil) != (name == "dense") {
			t.Errorf("%s: dense table %v", name, x.dense != nil)
		}
		for i, id := range ids {
			if k, ok := x.get(id); !ok || k != i {
				t.Errorf("%s: get(%d) = %d, %v; want %d", name, id, k, ok, i)
			}
		}
		for _, id := range []int64{0, -1, 4, 6, 8, 1<<40 + 1, 1 << 62} {
			if k, ok := x.get(id); ok {
				t.Errorf("%s: get(%d) = %d, want no card", name, id, k)
			}
		}
	}
}
