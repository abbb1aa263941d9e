-- +goose Up
-- MySQL commits every CREATE TABLE on its own: IF NOT EXISTS lets a
-- migration that was interrupted halfway (a process killed mid-way) run
-- again to its end.
-- Master data, as loaded by `txpipe load initial`.
CREATE TABLE IF NOT EXISTS customers (
    customer_id   BIGINT       NOT NULL PRIMARY KEY,
    name          VARCHAR(255) NOT NULL,
    phone_number  VARCHAR(64)  NOT NULL,
    address       VARCHAR(512) NOT NULL,
    email         VARCHAR(255) NOT NULL,
    credit_score  INT          NOT NULL,
    annual_income DECIMAL(12,2) NOT NULL
) DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS credit_card_types (
    card_type_id     BIGINT        NOT NULL PRIMARY KEY,
    name             VARCHAR(64)   NOT NULL,
    credit_score_min INT           NOT NULL,
    credit_score_max INT           NOT NULL,
    credit_limit_min DECIMAL(12,2) NOT NULL,
    credit_limit_max DECIMAL(12,2) NOT NULL,
    annual_fee       DECIMAL(12,2) NOT NULL,
    rewards_rate     DECIMAL(8,5)  NOT NULL
) DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS cards (
    card_id         BIGINT        NOT NULL PRIMARY KEY,
    customer_id     BIGINT        NOT NULL,
    card_type_id    BIGINT        NOT NULL,
    card_number     VARCHAR(32)   NOT NULL,
    expiration_date VARCHAR(8)    NOT NULL,
    credit_limit    DECIMAL(12,2) NOT NULL,
    current_balance DECIMAL(12,2) NOT NULL,
    issue_date      VARCHAR(16)   NOT NULL,
    KEY cards_customer (customer_id)
) DEFAULT CHARSET=utf8mb4;

-- The input transactions; seq is the input order (ties of timestamp).
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id         BIGINT        NOT NULL PRIMARY KEY,
    card_id                BIGINT        NOT NULL,
    merchant_name          VARCHAR(255)  NOT NULL,
    `timestamp`            DATETIME      NOT NULL,
    amount                 DECIMAL(12,2) NOT NULL,
    location               VARCHAR(512)  NOT NULL,
    transaction_type       VARCHAR(64)   NOT NULL,
    related_transaction_id VARCHAR(64)   NULL,
    seq                    BIGINT        NOT NULL,
    KEY transactions_event_order (`timestamp`, seq)
) DEFAULT CHARSET=utf8mb4;

-- What the stream layer decided, written exactly once by the sink.
CREATE TABLE IF NOT EXISTS stream_transactions (
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
    KEY stream_event_order (`timestamp`, seq),
    KEY stream_card (card_id)
) DEFAULT CHARSET=utf8mb4;

-- Transaction rows that could not be judged, from files and from the topic.
CREATE TABLE IF NOT EXISTS rejected_transactions (
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

-- Offsets the sinks consumed, committed in the same transaction as the rows.
CREATE TABLE IF NOT EXISTS sink_offsets (
    consumer    VARCHAR(128) NOT NULL,
    topic       VARCHAR(249) NOT NULL,
    `partition` INT          NOT NULL,
    next_offset BIGINT       NOT NULL,
    topic_id    VARCHAR(64)  NOT NULL DEFAULT '',
    PRIMARY KEY (consumer, topic, `partition`)
) DEFAULT CHARSET=utf8mb4;

-- +goose Down
DROP TABLE IF EXISTS sink_offsets;
DROP TABLE IF EXISTS rejected_transactions;
DROP TABLE IF EXISTS stream_transactions;
DROP TABLE IF EXISTS transactions;
DROP TABLE IF EXISTS cards;
DROP TABLE IF EXISTS credit_card_types;
DROP TABLE IF EXISTS customers;
