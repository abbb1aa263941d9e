// Package analytics describes the analytics views the batch layer writes
// (results/analytics_*.csv, the analytics_* MySQL tables and, with
// --parquet, results/analytics_*.parquet), reads them back for the
// serving layer, and holds the pure computations behind them that are not
// tied to Arrow: address parsing, exact rates and the cash-flow forecast.
//
// Every view is a table of named, typed columns. Values are written as
// text the same way in the CSV files and read back the same way from
// either store: integers in decimal, money with two decimals, rates and
// other fixed-point numbers with their column's number of decimals, dates
// as YYYY-MM-DD, NULL as an empty field.
package analytics

import "fmt"

// Type is the type of a column.
type Type int

// Column types.
const (
	Text  Type = iota // a string
	Int               // a 64-bit integer
	Money             // an amount in cents, written with two decimals
	Fixed             // a fixed-point number with Column.Scale decimals (rates, percentages)
	Date              // a calendar day, YYYY-MM-DD
)

func (t Type) String() string {
	switch t {
	case Text:
		return "text"
	case Int:
		return "integer"
	case Money:
		return "money"
	case Fixed:
		return "decimal"
	case Date:
		return "date"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Column is a column of a view.
type Column struct {
	Name     string
	Type     Type
	Scale    int  // decimals of a Fixed column (2 for Money)
	Nullable bool // may be NULL (an empty CSV field)
	Doc      string
}

// View describes an analytics view.
type View struct {
	// Name is the view's name in the API (GET /api/analytics/{Name}).
	Name string
	Doc  string
	// Columns are the view's columns, in the order of the CSV file.
	Columns []Column
	// DateColumn is the Date column that from/to filter on; empty when the
	// view has none.
	DateColumn string
}

// Table is the view's MySQL table.
func (v View) Table() string { return "analytics_" + v.Name }

// File is the view's file in the results directory.
func (v View) File() string { return "analytics_" + v.Name + ".csv" }

// ParquetFile is the view's Parquet file in the results directory.
func (v View) ParquetFile() string { return "analytics_" + v.Name + ".parquet" }

// ColumnNames are the names of the view's columns, in order.
func (v View) ColumnNames() []string {
	out := make([]string, len(v.Columns))
	for i, c := range v.Columns {
		out[i] = c.Name
	}
	return out
}

// Index returns the position of the named column, or -1.
func (v View) Index(name string) int {
	for i, c := range v.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// RowNumber is the extra column of every analytics table that keeps the
// rows in the order of the file (its primary key). It is in neither the
// CSV nor the Parquet file.
const RowNumber = "row_no"

// RateScale is the number of decimals of every rate and share (a
// fraction between 0 and 1).
const RateScale = 6

func text(name, doc string) Column  { return Column{Name: name, Type: Text, Doc: doc} }
func count(name, doc string) Column { return Column{Name: name, Type: Int, Doc: doc} }
func money(name, doc string) Column { return Column{Name: name, Type: Money, Scale: 2, Doc: doc} }
func rate(name, doc string) Column {
	return Column{Name: name, Type: Fixed, Scale: RateScale, Nullable: true, Doc: doc + " (empty when the denominator is 0)"}
}
func fixed2(name, doc string) Column {
	return Column{Name: name, Type: Fixed, Scale: 2, Nullable: true, Doc: doc}
}
func date(name, doc string) Column { return Column{Name: name, Type: Date, Doc: doc} }
func nullable(c Column) Column     { c.Nullable = true; return c }

// top returns the columns top_<what>_1, top_<what>_1_transactions, ... n.
func top(what string, n int) []Column {
	var out []Column
	for i := 1; i <= n; i++ {
		out = append(out,
			nullable(text(fmt.Sprintf("top_%s_%d", what, i), fmt.Sprintf("the %s with the most transactions, rank %d (ties by name)", what, i))),
			nullable(count(fmt.Sprintf("top_%s_%d_transactions", what, i), "its transactions")))
	}
	return out
}

func cat(parts ...[]Column) []Column {
	var out []Column
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Names of the views.
const (
	Regions        = "regions"
	Segments       = "segments"
	TimePatterns   = "time_patterns"
	Daily          = "daily"
	DeclineReasons = "decline_reasons"
	LostSales      = "lost_sales"
	MerchantDrops  = "merchant_drops"
	RefundRates    = "refund_rates"
	KPIs           = "kpis"
	Forecast       = "cashflow_forecast"
)

var views = []View{
	{
		Name: Regions,
		Doc: "Transactions by region, parsed from \"..., City, ST 12345\": scope merchant groups them by the merchant's location, " +
			"scope customer by the customer's address. A row with an empty city is the whole state; state and city are empty " +
			"for addresses that do not parse.",
		Columns: cat([]Column{
			text("scope", "merchant (the merchant's location) or customer (the customer's address)"),
			text("state", "two-letter state"),
			text("city", "city; empty on the state's total row"),
			count("transactions", "judged transactions"),
			count("approved", "approved transactions"),
			count("declined", "declined transactions"),
			rate("approval_rate", "approved / transactions"),
			money("amount", "net approved amount (refunds negative)"),
			money("spend", "approved positive amounts"),
			count("declined_over_half_limit", "declines: amount over half the credit limit"),
			count("declined_location_mismatch", "declines: merchant far from the customer"),
			count("declined_over_credit_limit", "declines: over the credit limit"),
			count("declined_other", "declines for any other reason"),
		}, top("type", 3), []Column{
			money("out_of_state_spend", "scope customer: spend of these customers at merchants in another state; "+
				"scope merchant: spend here by customers from another state"),
			rate("out_of_state_share", "out_of_state_spend / spend"),
		}),
	},
	{
		Name: Segments,
		Doc: "Customers by segment: credit-score band (the card types' score ranges, from the score before the batch), " +
			"annual-income band, card type, and age and gender bands where the dataset has them. A customer with cards of " +
			"several types counts in each type, with those cards only.",
		Columns: []Column{
			text("dimension", "credit_score, income, card_type, age or gender"),
			text("band", "the band"),
			count("customers", "customers in the band"),
			count("cards", "their cards"),
			count("transactions", "judged transactions of those cards"),
			count("declined", "declined transactions"),
			rate("decline_rate", "declined / transactions"),
			money("spend", "approved positive amounts"),
			money("amount", "net approved amount"),
			fixed2("usage_pct", "settled balances / credit limits x 100 over the band's cards (the batch's usage rule)"),
			fixed2("avg_score_change", "mean credit-score change of the band's customers in this batch"),
			count("score_up", "customers whose score went up"),
			count("score_down", "customers whose score went down"),
		},
	},
	{
		Name: TimePatterns,
		Doc: "Transactions by hour of day (0-23) and by weekday (1 Monday to 7 Sunday) of their timestamp, with the " +
			"merchants and transaction types most frequent in each.",
		Columns: cat([]Column{
			text("dimension", "hour or weekday"),
			count("slot", "hour 0-23, or ISO weekday 1 (Monday) to 7 (Sunday)"),
			text("label", "00:00-00:59 ... or Monday ..."),
			count("days", "days of the data's span that have this slot (every day has each hour)"),
			count("transactions", "judged transactions"),
			fixed2("transactions_per_day", "transactions / days"),
			count("approved", "approved transactions"),
			money("amount", "net approved amount"),
			money("spend", "approved positive amounts"),
		}, top("merchant", 3), top("type", 3)),
	},
	{
		Name:       Daily,
		Doc:        "Per calendar day: volume, amount, approval rate, average ticket, refunds and active cards (cards with at least one transaction).",
		DateColumn: "date",
		Columns: []Column{
			date("date", "the day"),
			text("weekday", "Monday ... Sunday"),
			count("transactions", "judged transactions"),
			count("approved", "approved transactions"),
			count("declined", "declined transactions"),
			rate("approval_rate", "approved / transactions"),
			money("amount", "net approved amount: the day's cash flow"),
			money("spend", "approved positive amounts"),
			count("refunds", "approved refunds"),
			money("refund_amount", "their amount (negative)"),
			nullable(money("average_ticket", "spend / approved positive transactions, rounded to the cent")),
			count("active_cards", "cards with at least one transaction that day"),
		},
	},
	{
		Name: DeclineReasons,
		Doc:  "Declines by reason.",
		Columns: []Column{
			text("reason", "the decline reason"),
			count("declines", "declined transactions"),
			rate("share_of_declines", "declines / all declines"),
			rate("share_of_transactions", "declines / all judged transactions"),
			money("amount", "their amount"),
		},
	},
	{
		Name: LostSales,
		Doc: "Declined transactions not followed, within 30 minutes, by an approved one of the same customer (any of " +
			"their cards) at the same merchant, per merchant and decline reason; most lost amount first.",
		Columns: []Column{
			text("merchant", "the merchant"),
			text("reason", "the decline reason"),
			count("declines", "declined transactions"),
			count("recovered", "followed by an approved one within 30 minutes"),
			count("lost", "not followed: lost sales"),
			money("lost_amount", "amount of the lost sales"),
			rate("lost_share", "lost / declines"),
		},
	},
	{
		Name: MerchantDrops,
		Doc: "Merchants needing attention: week-over-week drops in transactions between two complete weeks " +
			"(Monday to Sunday, both inside the data's span) from a previous week with at least the minimum volume; " +
			"largest relative drop first.",
		DateColumn: "week_start",
		Columns: []Column{
			text("merchant", "the merchant"),
			date("week_start", "Monday of the week that dropped"),
			count("previous_week_transactions", "transactions in the week before"),
			count("transactions", "transactions in this week"),
			count("change", "transactions - previous_week_transactions"),
			rate("drop_rate", "-change / previous_week_transactions"),
			money("previous_week_amount", "net approved amount in the week before"),
			money("amount", "net approved amount in this week"),
		},
	},
	{
		Name: RefundRates,
		Doc: "Refunds (approved transactions of type refund, or negative) against approved sales, by merchant and by " +
			"transaction type. A refund counts against the merchant and type of the transaction its " +
			"related_transaction_id names when that is among the card's last 16 approved sales; otherwise against its " +
			"own merchant and the type (unlinked). Merchants without refunds are left out.",
		Columns: []Column{
			text("dimension", "transaction_type or merchant"),
			text("name", "the type or the merchant"),
			count("sales", "approved transactions that are not refunds"),
			count("refunds", "approved refunds counted against it"),
			count("linked_refunds", "of those, linked to their original through related_transaction_id"),
			rate("refund_rate", "refunds / sales"),
			money("refund_amount", "amount of those refunds (negative)"),
		},
	},
	{
		Name: KPIs,
		Doc: "Headline figures. Rates are exact fractions rounded once; stream latency (event_dw_regdate - " +
			"event_date_origin of the event_staging table or results/event_staging.csv) is empty where there is no staging data.",
		Columns: []Column{
			text("metric", "the figure"),
			text("unit", "count, rate, money or seconds"),
			{Name: "value", Type: Fixed, Scale: RateScale, Nullable: true, Doc: "its value"},
			nullable(count("numerator", "of a rate: the numerator")),
			nullable(count("denominator", "of a rate: the denominator")),
		},
	},
	{
		Name: Forecast,
		Doc: "Daily net cash flow (approved amounts, refunds negative) and its forecast for the next 14 days: additive " +
			"Holt-Winters with weekly seasonality (ETS(A,A,A)) with 80 % and 95 % prediction intervals, and the " +
			"rolling-origin backtest of the same method (MAPE, interval coverage) next to a seasonal-naive forecast's MAPE.",
		DateColumn: "date",
		Columns: []Column{
			date("date", "the day"),
			text("kind", "actual or forecast"),
			nullable(money("net_flow", "the day's net approved amount (actual rows)")),
			nullable(money("forecast", "one-step-ahead fit (actual rows) or the forecast")),
			nullable(money("lo80", "80 % prediction interval, lower bound")),
			nullable(money("hi80", "80 % prediction interval, upper bound")),
			nullable(money("lo95", "95 % prediction interval, lower bound")),
			nullable(money("hi95", "95 % prediction interval, upper bound")),
			nullable(text("model", "the method and its smoothing parameters")),
			rate("backtest_mape", "mean absolute percentage error of the rolling-origin backtest (a fraction)"),
			rate("backtest_coverage80", "share of backtest actuals inside the 80 % interval"),
			rate("backtest_coverage95", "share of backtest actuals inside the 95 % interval"),
			rate("seasonal_naive_mape", "the same backtest's MAPE for a seasonal-naive forecast"),
			nullable(count("backtest_forecasts", "forecasts the backtest compared with actuals")),
		},
	},
}

// Views returns the analytics views, in the order they are listed.
func Views() []View {
	out := make([]View, len(views))
	copy(out, views)
	return out
}

// Lookup returns the view named name.
func Lookup(name string) (View, bool) {
	for _, v := range views {
		if v.Name == name {
			return v, true
		}
	}
	return View{}, false
}
