package stream

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/txpipe/txpipe"
)

// EncodeCard appends a card's master-data record (the cards.csv columns).
func EncodeCard(b []byte, c txpipe.Card) []byte {
	b = append(b, `{"card_id":`...)
	b = strconv.AppendInt(b, c.ID, 10)
	b = append(b, `,"customer_id":`...)
	b = strconv.AppendInt(b, c.CustomerID, 10)
	b = append(b, `,"card_type_id":`...)
	b = strconv.AppendInt(b, c.CardTypeID, 10)
	b = append(b, `,"card_number":`...)
	b = appendString(b, c.Number)
	b = append(b, `,"expiration_date":`...)
	b = appendString(b, c.Expiration)
	b = append(b, `,"credit_limit":`...)
	b = c.CreditLimit.Append(b)
	b = append(b, `,"current_balance":`...)
	b = c.CurrentBalance.Append(b)
	b = append(b, `,"issue_date":`...)
	b = appendString(b, c.IssueDate)
	return append(b, '}')
}

// DecodeCard reads a card's master-data record.
func DecodeCard(b []byte) (txpipe.Card, error) {
	var c txpipe.Card
	err := flatObject(b, func(key string, val []byte, _, _ bool) error {
		var err error
		switch key {
		case "card_id":
			c.ID, err = strconv.ParseInt(string(val), 10, 64)
		case "customer_id":
			c.CustomerID, err = strconv.ParseInt(string(val), 10, 64)
		case "card_type_id":
			c.CardTypeID, err = strconv.ParseInt(string(val), 10, 64)
		case "card_number":
			c.Number = string(val)
		case "expiration_date":
			c.Expiration = string(val)
		case "credit_limit":
			c.CreditLimit, err = txpipe.ParseMoney(string(val))
		case "current_balance":
			c.CurrentBalance, err = txpipe.ParseMoney(string(val))
		case "issue_date":
			c.IssueDate = string(val)
		}
		if err != nil {
			return fmt.Errorf("card field %s: %w", key, err)
		}
		return nil
	})
	if err == nil && (c.ID <= 0 || c.CreditLimit <= 0) {
		err = fmt.Errorf("card record without a card_id or a positive credit_limit")
	}
	return c, err
}

// EncodeCustomer appends a customer's master-data record (the
// customers.csv columns).
func EncodeCustomer(b []byte, c txpipe.Customer) []byte {
	b = append(b, `{"customer_id":`...)
	b = strconv.AppendInt(b, c.ID, 10)
	b = append(b, `,"name":`...)
	b = appendString(b, c.Name)
	b = append(b, `,"phone_number":`...)
	b = appendString(b, c.Phone)
	b = append(b, `,"address":`...)
	b = appendString(b, c.Address)
	b = append(b, `,"email":`...)
	b = appendString(b, c.Email)
	b = append(b, `,"credit_score":`...)
	b = strconv.AppendInt(b, c.CreditScore, 10)
	b = append(b, `,"annual_income":`...)
	b = c.AnnualIncome.Append(b)
	return append(b, '}')
}

// DecodeCustomer reads a customer's master-data record.
func DecodeCustomer(b []byte) (txpipe.Customer, error) {
	var c txpipe.Customer
	err := flatObject(b, func(key string, val []byte, _, _ bool) error {
		var err error
		switch key {
		case "customer_id":
			c.ID, err = strconv.ParseInt(string(val), 10, 64)
		case "name":
			c.Name = string(val)
		case "phone_number":
			c.Phone = string(val)
		case "address":
			c.Address = string(val)
		case "email":
			c.Email = string(val)
		case "credit_score":
			c.CreditScore, err = strconv.ParseInt(string(val), 10, 64)
		case "annual_income":
			c.AnnualIncome, err = txpipe.ParseMoney(string(val))
		}
		if err != nil {
			return fmt.Errorf("customer field %s: %w", key, err)
		}
		return nil
	})
	if err == nil && c.ID <= 0 {
		err = fmt.Errorf("customer record without a customer_id")
	}
	return c, err
}

// EncodeStolen appends the record value of a card reported stolen:
// {"card_id":N,"reported_at":"YYYY-MM-DD HH:MM:SS"} (UTC, whole seconds).
// A cleared card has no value (a tombstone): see StolenRecord.
func EncodeStolen(b []byte, s txpipe.StolenCard) []byte {
	b = append(b, `{"card_id":`...)
	b = strconv.AppendInt(b, s.CardID, 10)
	b = append(b, `,"reported_at":"`...)
	b = txpipe.AppendTimestamp(b, txpipe.ReportedAtOf(s.ReportedAt))
	return append(b, `"}`...)
}

// DecodeStolen reads the record value of a card reported stolen,
// strictly: exactly the fields card_id (a positive JSON integer) and
// reported_at (a "YYYY-MM-DD HH:MM:SS" string), each once.
func DecodeStolen(b []byte) (txpipe.StolenCard, error) {
	var s txpipe.StolenCard
	var haveID, haveAt bool
	err := flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		switch key {
		case "card_id":
			if haveID {
				return errors.New("card_id given twice")
			}
			haveID = true
			id, ok := txpipe.ParseID(string(val))
			if isString || isNull || !ok || val[0] == '0' { // JSON has no leading zeros
				return fmt.Errorf("card_id %s is not a positive integer", quoteField(val, isString, isNull))
			}
			s.CardID = id
		case "reported_at":
			if haveAt {
				return errors.New("reported_at given twice")
			}
			haveAt = true
			t, ok := txpipe.ParseTimestamp(string(val))
			if !isString || !ok {
				return fmt.Errorf("reported_at %s is not a \"YYYY-MM-DD HH:MM:SS\" string", quoteField(val, isString, isNull))
			}
			s.ReportedAt = t
		default:
			return fmt.Errorf("unknown field %q", key)
		}
		return nil
	})
	switch {
	case err != nil:
		return txpipe.StolenCard{}, fmt.Errorf("stolen-card record: %w", err)
	case !haveID || !haveAt:
		return txpipe.StolenCard{}, errors.New("stolen-card record: card_id and reported_at are both required")
	}
	return s, nil
}

// DecodeStolenRecord reads a record of the stolen-cards topic: its key is
// the card id in decimal; a tombstone (nil value) clears the card; a
// value must name the card of its key.
func DecodeStolenRecord(key, value []byte) (txpipe.StolenCard, error) {
	id, ok := txpipe.ParseID(string(key))
	if !ok {
		return txpipe.StolenCard{}, fmt.Errorf("stolen-card record: key %q is not a card id", truncate(string(key), 64))
	}
	if value == nil {
		return txpipe.StolenCard{CardID: id, Cleared: true}, nil
	}
	s, err := DecodeStolen(value)
	if err != nil {
		return s, err
	}
	if s.CardID != id {
		return txpipe.StolenCard{}, fmt.Errorf("stolen-card record: key %d but card_id %d", id, s.CardID)
	}
	return s, nil
}

// quoteField shows a JSON value in an error message, cut short.
func quoteField(val []byte, isString, isNull bool) string {
	switch {
	case isNull:
		return "null"
	case isString:
		return strconv.Quote(truncate(string(val), 64))
	}
	return truncate(string(val), 64)
}
