-- +goose Up
-- MySQL commits every CREATE TABLE on its own: IF NOT EXISTS lets a
-- migration that was interrupted halfway run again to its end.
-- (Version 3 is a Go migration: it adds the Kafka positions to
-- stream_transactions and rejected_transactions, see serving/mysqlstore.)

-- The cut-off of the batch views: per partition of the validated topic,
-- the offset after the last stream row the batch read. A stream row at or
-- past it came after the batch. Built as batch_cutoffs_next and swapped in
-- with the other views, so a reader sees views and cut-off of one run. (No
-- run id: like every view it is a function of the inputs alone.)
CREATE TABLE IF NOT EXISTS batch_cutoffs (
    topic       VARCHAR(249) NOT NULL,
    `partition` INT          NOT NULL,
    next_offset BIGINT       NOT NULL,
    PRIMARY KEY (topic, `partition`)
) DEFAULT CHARSET=utf8mb4;

-- The same cut-offs for every run, as recorded in batch_runs.
CREATE TABLE IF NOT EXISTS batch_run_cutoffs (
    run_id      BIGINT       NOT NULL,
    topic       VARCHAR(249) NOT NULL,
    `partition` INT          NOT NULL,
    next_offset BIGINT       NOT NULL,
    PRIMARY KEY (run_id, topic, `partition`)
) DEFAULT CHARSET=utf8mb4;

-- Transaction rows `txpipe load initial` could not load into transactions
-- (they never reach Kafka from there; rejected_transactions holds what the
-- stream dead-lettered).
CREATE TABLE IF NOT EXISTS load_rejected (
    source                 VARCHAR(255)  NOT NULL PRIMARY KEY,
    transaction_id         VARCHAR(255)  NOT NULL,
    reason                 VARCHAR(64)   NOT NULL,
    card_id                VARCHAR(255)  NOT NULL,
    merchant_name          VARCHAR(255)  NOT NULL,
    `timestamp`            VARCHAR(64)   NOT NULL,
    amount                 VARCHAR(64)   NOT NULL,
    location               VARCHAR(512)  NOT NULL,
    transaction_type       VARCHAR(64)   NOT NULL,
    related_transaction_id VARCHAR(255)  NOT NULL,
    detail                 VARCHAR(1024) NOT NULL,
    seq                    BIGINT        NOT NULL DEFAULT 0
) DEFAULT CHARSET=utf8mb4;

-- +goose Down
DROP TABLE IF EXISTS load_rejected;
DROP TABLE IF EXISTS batch_run_cutoffs;
DROP TABLE IF EXISTS batch_cutoffs;
