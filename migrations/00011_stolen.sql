-- +goose Up
-- Stolen cards, master data as the txpipe.stolen-cards topic holds it: one
-- row per card reported stolen, with when it was reported (UTC). `txpipe
-- load initial` (a dataset's stolen_cards.csv) and `txpipe report-stolen`
-- write the topic and this table alike; clearing a card deletes its row.
-- No foreign key to cards: load initial replaces the cards table.
CREATE TABLE IF NOT EXISTS stolen_cards (
    card_id     BIGINT    NOT NULL PRIMARY KEY,
    reported_at DATETIME  NOT NULL,
    recorded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) DEFAULT CHARSET=utf8mb4;

-- +goose Down
DROP TABLE IF EXISTS stolen_cards;
