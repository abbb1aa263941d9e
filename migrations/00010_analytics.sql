-- +goose Up
-- The analytics views (package batch/analytics), rebuilt by every
-- `txpipe batch` run that computes analytics: the run loads
-- <table>_next and swaps it in with the other views in one atomic
-- multi-table RENAME. row_no keeps the rows in the order of the view's
-- CSV file. Money is DECIMAL with two decimals, rates DECIMAL with six.
-- MySQL commits every CREATE TABLE on its own: IF NOT EXISTS lets a
-- migration that was interrupted halfway run again to its end.

-- Optional demographics of the customers (customers.csv's optional age
-- and gender columns), loaded by `txpipe load initial`.
CREATE TABLE IF NOT EXISTS customer_demographics (
    customer_id BIGINT      NOT NULL PRIMARY KEY,
    age         INT         NULL,
    gender      VARCHAR(32) NULL
) DEFAULT CHARSET=utf8mb4;

-- regions
CREATE TABLE IF NOT EXISTS analytics_regions (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `scope`                     VARCHAR(255)  NOT NULL,
    `state`                     VARCHAR(255)  NOT NULL,
    `city`                      VARCHAR(512)  NOT NULL,
    `transactions`              BIGINT        NOT NULL,
    `approved`                  BIGINT        NOT NULL,
    `declined`                  BIGINT        NOT NULL,
    `approval_rate`             DECIMAL(22,6) NULL,
    `amount`                    DECIMAL(16,2) NOT NULL,
    `spend`                     DECIMAL(16,2) NOT NULL,
    `declined_over_half_limit`  BIGINT        NOT NULL,
    `declined_location_mismatch` BIGINT        NOT NULL,
    `declined_over_credit_limit` BIGINT        NOT NULL,
    `declined_other`            BIGINT        NOT NULL,
    `top_type_1`                VARCHAR(255)  NULL,
    `top_type_1_transactions`   BIGINT        NULL,
    `top_type_2`                VARCHAR(255)  NULL,
    `top_type_2_transactions`   BIGINT        NULL,
    `top_type_3`                VARCHAR(255)  NULL,
    `top_type_3_transactions`   BIGINT        NULL,
    `out_of_state_spend`        DECIMAL(16,2) NOT NULL,
    `out_of_state_share`        DECIMAL(22,6) NULL
) DEFAULT CHARSET=utf8mb4;

-- segments
CREATE TABLE IF NOT EXISTS analytics_segments (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `dimension`                 VARCHAR(255)  NOT NULL,
    `band`                      VARCHAR(255)  NOT NULL,
    `customers`                 BIGINT        NOT NULL,
    `cards`                     BIGINT        NOT NULL,
    `transactions`              BIGINT        NOT NULL,
    `declined`                  BIGINT        NOT NULL,
    `decline_rate`              DECIMAL(22,6) NULL,
    `spend`                     DECIMAL(16,2) NOT NULL,
    `amount`                    DECIMAL(16,2) NOT NULL,
    `usage_pct`                 DECIMAL(18,2) NULL,
    `avg_score_change`          DECIMAL(18,2) NULL,
    `score_up`                  BIGINT        NOT NULL,
    `score_down`                BIGINT        NOT NULL
) DEFAULT CHARSET=utf8mb4;

-- time_patterns
CREATE TABLE IF NOT EXISTS analytics_time_patterns (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `dimension`                 VARCHAR(255)  NOT NULL,
    `slot`                      BIGINT        NOT NULL,
    `label`                     VARCHAR(255)  NOT NULL,
    `days`                      BIGINT        NOT NULL,
    `transactions`              BIGINT        NOT NULL,
    `transactions_per_day`      DECIMAL(18,2) NULL,
    `approved`                  BIGINT        NOT NULL,
    `amount`                    DECIMAL(16,2) NOT NULL,
    `spend`                     DECIMAL(16,2) NOT NULL,
    `top_merchant_1`            VARCHAR(255)  NULL,
    `top_merchant_1_transactions` BIGINT        NULL,
    `top_merchant_2`            VARCHAR(255)  NULL,
    `top_merchant_2_transactions` BIGINT        NULL,
    `top_merchant_3`            VARCHAR(255)  NULL,
    `top_merchant_3_transactions` BIGINT        NULL,
    `top_type_1`                VARCHAR(255)  NULL,
    `top_type_1_transactions`   BIGINT        NULL,
    `top_type_2`                VARCHAR(255)  NULL,
    `top_type_2_transactions`   BIGINT        NULL,
    `top_type_3`                VARCHAR(255)  NULL,
    `top_type_3_transactions`   BIGINT        NULL
) DEFAULT CHARSET=utf8mb4;

-- daily
CREATE TABLE IF NOT EXISTS analytics_daily (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `date`                      DATE          NOT NULL,
    `weekday`                   VARCHAR(255)  NOT NULL,
    `transactions`              BIGINT        NOT NULL,
    `approved`                  BIGINT        NOT NULL,
    `declined`                  BIGINT        NOT NULL,
    `approval_rate`             DECIMAL(22,6) NULL,
    `amount`                    DECIMAL(16,2) NOT NULL,
    `spend`                     DECIMAL(16,2) NOT NULL,
    `refunds`                   BIGINT        NOT NULL,
    `refund_amount`             DECIMAL(16,2) NOT NULL,
    `average_ticket`            DECIMAL(16,2) NULL,
    `active_cards`              BIGINT        NOT NULL,
    KEY analytics_daily_date (`date`)
) DEFAULT CHARSET=utf8mb4;

-- decline_reasons
CREATE TABLE IF NOT EXISTS analytics_decline_reasons (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `reason`                    VARCHAR(255)  NOT NULL,
    `declines`                  BIGINT        NOT NULL,
    `share_of_declines`         DECIMAL(22,6) NULL,
    `share_of_transactions`     DECIMAL(22,6) NULL,
    `amount`                    DECIMAL(16,2) NOT NULL
) DEFAULT CHARSET=utf8mb4;

-- lost_sales
CREATE TABLE IF NOT EXISTS analytics_lost_sales (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `merchant`                  VARCHAR(512)  NOT NULL,
    `reason`                    VARCHAR(255)  NOT NULL,
    `declines`                  BIGINT        NOT NULL,
    `recovered`                 BIGINT        NOT NULL,
    `lost`                      BIGINT        NOT NULL,
    `lost_amount`               DECIMAL(16,2) NOT NULL,
    `lost_share`                DECIMAL(22,6) NULL
) DEFAULT CHARSET=utf8mb4;

-- merchant_drops
CREATE TABLE IF NOT EXISTS analytics_merchant_drops (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `merchant`                  VARCHAR(512)  NOT NULL,
    `week_start`                DATE          NOT NULL,
    `previous_week_transactions` BIGINT        NOT NULL,
    `transactions`              BIGINT        NOT NULL,
    `change`                    BIGINT        NOT NULL,
    `drop_rate`                 DECIMAL(22,6) NULL,
    `previous_week_amount`      DECIMAL(16,2) NOT NULL,
    `amount`                    DECIMAL(16,2) NOT NULL,
    KEY analytics_merchant_drops_week_start (`week_start`)
) DEFAULT CHARSET=utf8mb4;

-- refund_rates
CREATE TABLE IF NOT EXISTS analytics_refund_rates (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `dimension`                 VARCHAR(255)  NOT NULL,
    `name`                      VARCHAR(512)  NOT NULL,
    `sales`                     BIGINT        NOT NULL,
    `refunds`                   BIGINT        NOT NULL,
    `linked_refunds`            BIGINT        NOT NULL,
    `refund_rate`               DECIMAL(22,6) NULL,
    `refund_amount`             DECIMAL(16,2) NOT NULL
) DEFAULT CHARSET=utf8mb4;

-- kpis
CREATE TABLE IF NOT EXISTS analytics_kpis (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `metric`                    VARCHAR(255)  NOT NULL,
    `unit`                      VARCHAR(255)  NOT NULL,
    `value`                     DECIMAL(24,6) NULL,
    `numerator`                 BIGINT        NULL,
    `denominator`               BIGINT        NULL
) DEFAULT CHARSET=utf8mb4;

-- cashflow_forecast
CREATE TABLE IF NOT EXISTS analytics_cashflow_forecast (
    row_no                      BIGINT        NOT NULL PRIMARY KEY,
    `date`                      DATE          NOT NULL,
    `kind`                      VARCHAR(255)  NOT NULL,
    `net_flow`                  DECIMAL(16,2) NULL,
    `forecast`                  DECIMAL(16,2) NULL,
    `lo80`                      DECIMAL(16,2) NULL,
    `hi80`                      DECIMAL(16,2) NULL,
    `lo95`                      DECIMAL(16,2) NULL,
    `hi95`                      DECIMAL(16,2) NULL,
    `model`                     VARCHAR(255)  NULL,
    `backtest_mape`             DECIMAL(22,6) NULL,
    `backtest_coverage80`       DECIMAL(22,6) NULL,
    `backtest_coverage95`       DECIMAL(22,6) NULL,
    `seasonal_naive_mape`       DECIMAL(22,6) NULL,
    `backtest_forecasts`        BIGINT        NULL,
    KEY analytics_cashflow_forecast_date (`date`)
) DEFAULT CHARSET=utf8mb4;

-- +goose Down
DROP TABLE IF EXISTS analytics_cashflow_forecast;
DROP TABLE IF EXISTS analytics_kpis;
DROP TABLE IF EXISTS analytics_refund_rates;
DROP TABLE IF EXISTS analytics_merchant_drops;
DROP TABLE IF EXISTS analytics_lost_sales;
DROP TABLE IF EXISTS analytics_decline_reasons;
DROP TABLE IF EXISTS analytics_daily;
DROP TABLE IF EXISTS analytics_time_patterns;
DROP TABLE IF EXISTS analytics_segments;
DROP TABLE IF EXISTS analytics_regions;
DROP TABLE IF EXISTS customer_demographics;
