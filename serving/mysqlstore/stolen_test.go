package mysqlstore

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
)

func TestApplyStolen(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	at := func(h int) time.Time { return time.Date(2025, 4, 1, h, 30, 15, 0, time.UTC) }
	var batch []txpipe.StolenCard
	for id := int64(1); id <= 1200; id++ { // more than one statement's worth
		batch = append(batch, txpipe.StolenCard{CardID: id, ReportedAt: at(int(id % 24))})
	}
	if err := db.ApplyStolen(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// A new report time, a clearing, a clearing then a report again (the
	// last wins), and clearing a card that is not there.
	if err := db.ApplyStolen(ctx, []txpipe.StolenCard{
		{CardID: 5, ReportedAt: at(23)},
		{CardID: 6, Cleared: true},
		{CardID: 7, Cleared: true}, {CardID: 7, ReportedAt: at(1)},
		{CardID: 9999, Cleared: true},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.StolenCards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]txpipe.StolenCard{}
	for _, s := range batch {
		want[s.CardID] = s
	}
	want[5] = txpipe.StolenCard{CardID: 5, ReportedAt: at(23)}
	delete(want, 6)
	want[7] = txpipe.StolenCard{CardID: 7, ReportedAt: at(1)}
	if !maps.Equal(got, want) {
		t.Fatalf("stolen_cards has %d rows, want %d (card 5: %+v, 6: %v, 7: %+v)", len(got), len(want), got[5], got[6], got[7])
	}
}
