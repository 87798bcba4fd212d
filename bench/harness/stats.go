package main

import (
	"math"
	"sort"
)

// spread is the median and range of a few runs' values.
type spread struct {
	N             int
	Med, Min, Max float64
}

func (s spread) ok() bool { return s.N > 0 }

func summarizeVals(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{N: len(s), Med: med, Min: s[0], Max: s[len(s)-1]}
}

// metric extracts one figure from a measurement; ok is false when it has none.
type metric func(m measurement) (float64, bool)

func resMetric(f func(m measurement) float64) metric {
	return func(m measurement) (float64, bool) {
		if m.Err != "" || m.Res == nil {
			return 0, false
		}
		v := f(m)
		return v, !math.IsNaN(v)
	}
}

var (
	mThroughput = resMetric(func(m measurement) float64 { return m.Res.Throughput })
	mP50        = resMetric(func(m measurement) float64 { return lat(m, m.Res.Latency.P50) })
	mP99        = resMetric(func(m measurement) float64 { return lat(m, m.Res.Latency.P99) })
	mP999       = resMetric(func(m measurement) float64 { return lat(m, m.Res.Latency.P999) })
	mMax        = resMetric(func(m measurement) float64 { return lat(m, m.Res.Latency.Max) })
	mRSS        = resMetric(func(m measurement) float64 { return m.Res.RSSPerConn })
	mErrors     = resMetric(func(m measurement) float64 { return float64(m.Res.Errors) })
	mLost       = resMetric(func(m measurement) float64 { return float64(m.Res.Lost) })
	mCPU        = resMetric(func(m measurement) float64 {
		wall := m.Res.WallS
		if wall <= 0 {
			wall = m.Res.Seconds + m.Res.WarmupS
		}
		return (m.Res.CPU.UserS + m.Res.CPU.SystemS) / wall
	})
	mReplyP99 = func(m measurement) (float64, bool) {
		if m.Err != "" || m.Res == nil || m.Res.ReplyLatency == nil || m.Res.ReplyLatency.Count == 0 {
			return 0, false
		}
		return m.Res.ReplyLatency.P99, true
	}
	mServerCPU = resMetric(func(m measurement) float64 { return m.ServerCPU })
	// mOtherCPU is the CPU other processes used during the run, in cores.
	mOtherCPU = func(m measurement) (float64, bool) {
		if m.Err != "" || m.Res == nil || m.MachineCPU <= 0 {
			return 0, false
		}
		lg, _ := mCPU(m)
		return max(m.MachineCPU-m.ServerCPU-m.PlacesCPU-lg, 0), true
	}
	mPlacesCPU = resMetric(func(m measurement) float64 { return m.PlacesCPU })
	mSideP99   = func(m measurement) (float64, bool) {
		if m.Err != "" || m.Side == nil {
			return 0, false
		}
		return m.Side.Latency.P99, true
	}
)

// lat is v, or NaN (no figure) when the run recorded no latency at all.
func lat(m measurement, v float64) float64 {
	if m.Res.Latency.Count == 0 {
		return math.NaN()
	}
	return v
}

// values returns the metric over the successful runs of impl in scenario id.
func (h *harness) values(id, impl string, f metric) []float64 {
	var vs []float64
	for _, m := range h.ms {
		if m.Scenario == id && m.Impl == impl {
			if v, ok := f(m); ok {
				vs = append(vs, v)
			}
		}
	}
	return vs
}

func (h *harness) stat(id, impl string, f metric) spread {
	return summarizeVals(h.values(id, impl, f))
}

// ratio pairs the runs of a and b by run number (each pair measured back to back) and
// summarizes a/b.
func (h *harness) ratio(id, a, b string, f metric) spread {
	byRun := map[int]float64{}
	for _, m := range h.ms {
		if m.Scenario == id && m.Impl == b {
			if v, ok := f(m); ok && v != 0 {
				byRun[m.Run] = v
			}
		}
	}
	var rs []float64
	for _, m := range h.ms {
		if m.Scenario == id && m.Impl == a {
			if v, ok := f(m); ok {
				if d, ok := byRun[m.Run]; ok {
					rs = append(rs, v/d)
				}
			}
		}
	}
	return summarizeVals(rs)
}

// failure returns why impl has no result in scenario id ("" if it has one).
func (h *harness) failure(id, impl string) string {
	reason := ""
	for _, m := range h.ms {
		if m.Scenario == id && m.Impl == impl {
			if m.Err == "" {
				return ""
			}
			reason = m.Err
		}
	}
	return reason
}

// failures counts the failed runs of impl in scenario id and returns one reason.
func (h *harness) failures(id, impl string) (int, string) {
	n, reason := 0, ""
	for _, m := range h.ms {
		if m.Scenario == id && m.Impl == impl && m.Err != "" {
			n++
			reason = m.Err
		}
	}
	return n, reason
}
