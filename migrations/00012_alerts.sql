-- +goose Up
-- MySQL commits every CREATE TABLE on its own: IF NOT EXISTS lets a
-- migration that was interrupted halfway run again to its end.

-- The stolen-card alerts the stream emitted, written exactly once by the
-- sink: one row per alert record, keyed by its Kafka position.
CREATE TABLE IF NOT EXISTS alerts (
    kafka_topic       VARCHAR(255)  NOT NULL,
    kafka_partition   INT           NOT NULL,
    kafka_offset      BIGINT        NOT NULL,
    alert_type        VARCHAR(32)   NOT NULL,
    card_id           BIGINT        NOT NULL,
    window_from       DATETIME(3)   NOT NULL,
    window_to         DATETIME(3)   NOT NULL,
    late              TINYINT(1)    NOT NULL,
    payments          INT           NOT NULL,
    total             DECIMAL(14,2) NOT NULL,
    first_seen        DATETIME(3)   NOT NULL,
    last_seen         DATETIME(3)   NOT NULL,
    event_date_origin DATETIME(3)   NOT NULL,
    alert_json        MEDIUMTEXT    NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset),
    KEY alerts_card (card_id, window_to),
    KEY alerts_time (window_to)
) DEFAULT CHARSET=utf8mb4;

-- Every event of the stream (payments and both kinds of alert), with when
-- it happened and when the sink took it: latency is the difference.
CREATE TABLE IF NOT EXISTS event_staging (
    kafka_topic       VARCHAR(255) NOT NULL,
    kafka_partition   INT          NOT NULL,
    kafka_offset      BIGINT       NOT NULL,
    event_type        VARCHAR(32)  NOT NULL,
    card_id           BIGINT       NOT NULL,
    event_date_origin DATETIME(3)  NOT NULL,
    event_dw_regdate  DATETIME(6)  NOT NULL,
    event_json_data   MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset),
    KEY staging_type_time (event_type, event_date_origin)
) DEFAULT CHARSET=utf8mb4;

-- +goose Down
DROP TABLE IF EXISTS event_staging;
DROP TABLE IF EXISTS alerts;
