package txpipe

// Rescore is the batch layer's last step. Given every customer and every
// card with its settled balance, it returns the customers with their new
// credit scores and the cards with their new limits: usage is
// Σ balance / Σ limit over the customer's cards, the score moves by
// ScoreChange, and a negative change cuts each of the customer's card
// limits with CutLimit. A customer without cards keeps the score. The
// inputs are not modified; the outputs keep the input order.
func Rescore(customers []Customer, cards []Card) ([]Customer, []Card) {
	type totals struct{ balance, limit Money }
	sum := make(map[int64]totals, len(customers))
	for _, c := range cards {
		t := sum[c.CustomerID]
		t.balance += c.CurrentBalance
		t.limit += c.CreditLimit
		sum[c.CustomerID] = t
	}
	change := make(map[int64]int64, len(customers))
	outCustomers := make([]Customer, len(customers))
	for i, c := range customers {
		if t, ok := sum[c.ID]; ok {
			change[c.ID] = ScoreChange(t.balance, t.limit)
			c.CreditScore += change[c.ID]
		}
		outCustomers[i] = c
	}
	outCards := make([]Card, len(cards))
	for i, c := range cards {
		c.CreditLimit = CutLimit(c.CreditLimit, change[c.CustomerID])
		outCards[i] = c
	}
	return outCustomers, outCards
}
