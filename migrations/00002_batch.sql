-- +goose Up
-- MySQL commits every CREATE TABLE on its own: IF NOT EXISTS lets a
-- migration that was interrupted halfway (a process killed mid-way) run
-- again to its end.
-- The batch views, rebuilt from scratch by every `txpipe batch` run: the run
-- loads <table>_next and swaps it in with one atomic multi-table RENAME, so
-- readers see either the previous views or the new ones, never a mix.

-- stream_transactions with pending settled to approved.
CREATE TABLE IF NOT EXISTS batch_transactions (
    transaction_id         BIGINT        NOT NULL PRIMARY KEY,
    card_id                BIGINT        NOT NULL,
    merchant_name          VARCHAR(255)  NOT NULL,
    `timestamp`            DATETIME      NOT NULL,
    amount                 DECIMAL(12,2) NOT NULL,
    location               VARCHAR(512)  NOT NULL,
    transaction_type       VARCHAR(64)   NOT NULL,
    related_transaction_id VARCHAR(64)   NULL,
    status                 VARCHAR(16)   NOT NULL,
    pending_balance        DECIMAL(14,2) NOT NULL,
    decline_reason         VARCHAR(64)   NOT NULL DEFAULT '',
    seq                    BIGINT        NOT NULL,
    KEY batch_event_order (`timestamp`, seq),
    KEY batch_card (card_id)
) DEFAULT CHARSET=utf8mb4;

-- cards with the settled current_balance and the new credit_limit.
CREATE TABLE IF NOT EXISTS cards_updated (
    card_id         BIGINT        NOT NULL PRIMARY KEY,
    customer_id     BIGINT        NOT NULL,
    card_type_id    BIGINT        NOT NULL,
    card_number     VARCHAR(32)   NOT NULL,
    expiration_date VARCHAR(8)    NOT NULL,
    credit_limit    DECIMAL(12,2) NOT NULL,
    current_balance DECIMAL(12,2) NOT NULL,
    issue_date      VARCHAR(16)   NOT NULL,
    KEY cards_updated_customer (customer_id)
) DEFAULT CHARSET=utf8mb4;

-- customers with the new credit_score.
CREATE TABLE IF NOT EXISTS customers_updated (
    customer_id   BIGINT        NOT NULL PRIMARY KEY,
    name          VARCHAR(255)  NOT NULL,
    phone_number  VARCHAR(64)   NOT NULL,
    address       VARCHAR(512)  NOT NULL,
    email         VARCHAR(255)  NOT NULL,
    credit_score  INT           NOT NULL,
    annual_income DECIMAL(12,2) NOT NULL
) DEFAULT CHARSET=utf8mb4;

-- One row per batch run: 'running' while it runs, then 'ok' or 'failed'.
CREATE TABLE IF NOT EXISTS batch_runs (
    run_id      BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    started_at  DATETIME(6)  NOT NULL,
    finished_at DATETIME(6)  NULL,
    rows_read   BIGINT       NOT NULL DEFAULT 0,
    cutoff      VARCHAR(255) NOT NULL DEFAULT '',
    status      VARCHAR(16)  NOT NULL,
    `error`     TEXT         NULL
) DEFAULT CHARSET=utf8mb4;

-- +goose Down
DROP TABLE IF EXISTS batch_runs;
DROP TABLE IF EXISTS customers_updated;
DROP TABLE IF EXISTS cards_updated;
DROP TABLE IF EXISTS batch_transactions;
