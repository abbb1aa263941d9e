package analytics

import (
	"fmt"
	"math"
)

// The cash-flow forecast is additive Holt-Winters in its state-space form,
// ETS(A,A,A) (Hyndman, Koehler, Ord and Snyder, "Forecasting with
// Exponential Smoothing", 2008, ch. 3 and 6): for a series y with period m,
//
//	ŷ(t)  = l + b + s(t-m)             e(t) = y(t) - ŷ(t)
//	l     ← l + b + α e(t)
//	b     ← b + β e(t)
//	s(t)  = s(t-m) + γ e(t)
//
// The h-step forecast is l + h b + s(last of its season) and its variance
// σ² (1 + Σ_{j=1}^{h-1} (α + β j + γ [j mod m = 0])²), with σ² the mean
// squared one-step error: the closed form of that model class, which gives
// the prediction intervals without simulation. The parameters are chosen
// by a deterministic grid search minimising the one-step squared error
// (0 < α < 1, 0 ≤ β ≤ α, 0 ≤ γ ≤ 1 - α), refined once around the best
// point. The code is small and has no dependency: no well-kept Go library
// offers exponential smoothing with prediction intervals.

// Normal quantiles of the two-sided 80 % and 95 % intervals.
const (
	z80 = 1.2815515655446004
	z95 = 1.959963984540054
)

// HWParams are the smoothing parameters of ETS(A,A,A).
type HWParams struct {
	Alpha, Beta, Gamma float64
}

// HWModel is ETS(A,A,A) fitted to a series.
type HWModel struct {
	Period int
	HWParams
	level, trend float64
	season       []float64 // by t mod Period
	n            int       // observations
	Sigma2       float64   // mean squared one-step error after the first period
	Fitted       []float64 // one-step-ahead forecast of each observation
}

// Prediction is a point forecast with its 80 % and 95 % intervals.
type Prediction struct {
	Mean, Lo80, Hi80, Lo95, Hi95 float64
}

// MinHWObservations is the shortest series FitHW fits: two periods.
func MinHWObservations(period int) int { return 2 * period }

// initial returns the initial level (before y[0]), trend and seasonal
// components from the first two periods.
func initial(y []float64, m int) (float64, float64, []float64) {
	mean := func(s []float64) float64 {
		t := 0.0
		for _, v := range s {
			t += v
		}
		return t / float64(len(s))
	}
	m1, m2 := mean(y[:m]), mean(y[m:2*m])
	b := (m2 - m1) / float64(m)
	l := m1 - b*float64(m+1)/2
	s := make([]float64, m)
	sum := 0.0
	for i := range m {
		s[i] = y[i] - (l + float64(i+1)*b)
		sum += s[i]
	}
	for i := range s {
		s[i] -= sum / float64(m)
	}
	return l, b, s
}

// sse runs the recursion over y with p and returns the sum of squared
// one-step errors from the second period on.
func sse(y []float64, m int, p HWParams, l, b float64, s0, s []float64) float64 {
	copy(s, s0)
	total := 0.0
	for t, v := range y {
		k := t % m
		e := v - (l + b + s[k])
		l, b = l+b+p.Alpha*e, b+p.Beta*e
		s[k] += p.Gamma * e
		if t >= m {
			total += e * e
		}
	}
	return total
}

// FitHW fits ETS(A,A,A) of the given period to y (at least two periods).
func FitHW(y []float64, period int) (*HWModel, error) {
	m := period
	if m < 2 || len(y) < MinHWObservations(m) {
		return nil, fmt.Errorf("forecast: %d observations, need at least %d", len(y), MinHWObservations(max(m, 2)))
	}
	for _, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("forecast: the series holds %v", v)
		}
	}
	l0, b0, s0 := initial(y, m)
	work := make([]float64, m)
	best, bestSSE := HWParams{}, math.Inf(1)
	try := func(p HWParams) {
		if p.Alpha <= 0 || p.Alpha >= 1 || p.Beta < 0 || p.Beta > p.Alpha || p.Gamma < 0 || p.Gamma > 1-p.Alpha {
			return
		}
		if v := sse(y, m, p, l0, b0, s0, work); v < bestSSE {
			best, bestSSE = p, v
		}
	}
	betas := []float64{0, 0.01, 0.02, 0.05, 0.1, 0.2}
	for a := 1; a <= 19; a++ {
		for _, beta := range betas {
			for g := 0; g <= 18; g++ {
				try(HWParams{float64(a) * 0.05, beta, float64(g) * 0.05})
			}
		}
	}
	c := best
	for da := -4; da <= 4; da++ {
		for db := -2; db <= 2; db++ {
			for dg := -4; dg <= 4; dg++ {
				try(HWParams{c.Alpha + float64(da)*0.0125, c.Beta + float64(db)*0.005, c.Gamma + float64(dg)*0.0125})
			}
		}
	}
	return runHW(y, m, best, l0, b0, s0), nil
}

// runHW runs the recursion with p and keeps the final state.
func runHW(y []float64, m int, p HWParams, l, b float64, s0 []float64) *HWModel {
	h := &HWModel{Period: m, HWParams: p, season: append([]float64(nil), s0...), n: len(y), Fitted: make([]float64, len(y))}
	total, cnt := 0.0, 0
	for t, v := range y {
		k := t % m
		f := l + b + h.season[k]
		h.Fitted[t] = f
		e := v - f
		l, b = l+b+p.Alpha*e, b+p.Beta*e
		h.season[k] += p.Gamma * e
		if t >= m {
			total += e * e
			cnt++
		}
	}
	h.level, h.trend = l, b
	if cnt > 0 {
		h.Sigma2 = total / float64(cnt)
	}
	return h
}

// Forecast returns the forecasts 1..steps ahead of the end of the series.
func (h *HWModel) Forecast(steps int) []Prediction {
	out := make([]Prediction, steps)
	acc := 0.0 // Σ c_j² for j < step
	for i := range steps {
		step := i + 1
		mean := h.level + float64(step)*h.trend + h.season[(h.n+i)%h.Period]
		sd := math.Sqrt(h.Sigma2 * (1 + acc))
		out[i] = Prediction{Mean: mean, Lo80: mean - z80*sd, Hi80: mean + z80*sd, Lo95: mean - z95*sd, Hi95: mean + z95*sd}
		c := h.Alpha + h.Beta*float64(step)
		if step%h.Period == 0 {
			c += h.Gamma
		}
		acc += c * c
	}
	return out
}

// String names the model and its parameters.
func (h *HWModel) String() string {
	return fmt.Sprintf("ETS(A,A,A) m=%d alpha=%.4f beta=%.4f gamma=%.4f", h.Period, h.Alpha, h.Beta, h.Gamma)
}

// Backtest is the outcome of a rolling-origin evaluation.
type Backtest struct {
	Origins   int // forecast origins
	Forecasts int // (origin, horizon) pairs compared with an actual
	// MAPE is the mean of |actual - forecast| / |actual| over the pairs
	// whose actual is not 0 (MAPEPairs of them); NaiveMAPE the same for
	// the seasonal-naive forecast (the value one period before, repeated).
	MAPE, NaiveMAPE float64
	MAPEPairs       int
	// Covered80 and Covered95 count the pairs whose actual lies inside
	// the interval.
	Covered80, Covered95 int
}

// RollingBacktest refits the model at each origin of the last `origins`
// days whose training series has at least two periods, forecasts up to
// horizon steps (as far as the series goes), and compares with the
// actuals. It returns false when no origin qualifies.
func RollingBacktest(y []float64, period, horizon, origins int) (Backtest, bool) {
	var bt Backtest
	first := max(MinHWObservations(period), len(y)-origins)
	absErr, naiveErr := 0.0, 0.0
	for o := first; o < len(y); o++ {
		model, err := FitHW(y[:o], period)
		if err != nil {
			continue
		}
		steps := min(horizon, len(y)-o)
		preds := model.Forecast(steps)
		bt.Origins++
		for i, p := range preds {
			actual := y[o+i]
			naive := y[o+i-period*(i/period+1)]
			bt.Forecasts++
			if p.Lo80 <= actual && actual <= p.Hi80 {
				bt.Covered80++
			}
			if p.Lo95 <= actual && actual <= p.Hi95 {
				bt.Covered95++
			}
			if actual != 0 {
				bt.MAPEPairs++
				absErr += math.Abs(actual-p.Mean) / math.Abs(actual)
				naiveErr += math.Abs(actual-naive) / math.Abs(actual)
			}
		}
	}
	if bt.Forecasts == 0 {
		return bt, false
	}
	if bt.MAPEPairs > 0 {
		bt.MAPE = absErr / float64(bt.MAPEPairs)
		bt.NaiveMAPE = naiveErr / float64(bt.MAPEPairs)
	}
	return bt, true
}
