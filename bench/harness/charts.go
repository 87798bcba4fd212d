package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var shortLabels = map[string]string{
	implHerd:     "herd",
	implHerdNoLg: "herd, no log",
	implBaseline: "goroutines",
	implAsyncio:  "asyncio seed",
	implUvloop:   "uvloop seed",
	implBest:     "asyncio best",
	implUvBest:   "uvloop best",
	implRedis:    "Redis",
}

// logSpan is the ratio of the largest to the smallest value past which a chart's value axis
// is logarithmic: below it a linear axis reads better, above it the small bars vanish.
const logSpan = 20

// wantLog reports whether values (all of which must be drawn) call for a log axis.
func wantLog(vs []float64) bool {
	lo, hi := math.Inf(1), 0.0
	for _, v := range vs {
		if v <= 0 {
			return false // a log axis cannot show it
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi > 0 && hi/lo >= logSpan
}

// plainTicks are gonum's default ticks labelled as the report writes numbers (75,000, not
// 75000.00).
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
			if math.Abs(ts[i].Value) >= 10000 {
				ts[i].Label = num(ts[i].Value)
			}
		}
	}
	return ts
}

// linear gives p's Y axis a linear scale from 0.
func linear(p *plot.Plot) {
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
}

// useLog makes p's Y axis logarithmic, from the power of ten at or below lo.
func useLog(p *plot.Plot, lo float64) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	p.Y.Label.Text += " (log scale)"
}

// rangeBars are min-max error bars around medians.
type rangeBars struct{ s []spread }

func (r rangeBars) Len() int                    { return len(r.s) }
func (r rangeBars) XY(i int) (float64, float64) { return float64(i), r.s[i].Med }
func (r rangeBars) YError(i int) (float64, float64) {
	return r.s[i].Med - r.s[i].Min, r.s[i].Max - r.s[i].Med
}

// bars draws one bar per value from the bottom of the plot's Y axis, so that it works on a
// logarithmic axis too (gonum's BarChart starts its bars at 0, which a log axis cannot show).
type bars struct {
	vals  []float64
	width vg.Length
	color color.Color
}

func (b bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	y0 := trY(p.Y.Min)
	for i, v := range b.vals {
		x := trX(float64(i))
		y1 := trY(v)
		c.FillPolygon(b.color, c.ClipPolygonY([]vg.Point{
			{X: x - b.width/2, Y: y0}, {X: x + b.width/2, Y: y0}, {X: x + b.width/2, Y: y1}, {X: x - b.width/2, Y: y1},
		}))
	}
}

func (b bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin = math.Inf(1)
	for _, v := range b.vals {
		ymin, ymax = min(ymin, v), max(ymax, v)
	}
	return -0.5, float64(len(b.vals)) - 0.5, ymin, ymax
}

// barChart writes a chart of medians as bars, each with a min-max whisker and its median
// written above it, to path. show formats a median for its label.
func barChart(path, title, ylabel string, names []string, ss []spread, show func(float64) string) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	vals := make([]float64, len(ss))
	var all []float64
	xys := make(plotter.XYs, len(ss))
	labels := make([]string, len(ss))
	for i, s := range ss {
		vals[i] = s.Med
		all = append(all, s.Min, s.Med, s.Max)
		xys[i] = plotter.XY{X: float64(i), Y: s.Max}
		labels[i] = show(s.Med)
	}
	if wantLog(all) {
		useLog(p, slicesMin(all))
	} else {
		linear(p)
	}
	p.Add(bars{vals: vals, width: vg.Points(28), color: color.RGBA{R: 70, G: 130, B: 180, A: 255}})
	eb, err := plotter.NewYErrorBars(rangeBars{ss})
	if err != nil {
		return err
	}
	p.Add(eb)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].XAlign = draw.XCenter
		lb.TextStyle[i].YAlign = draw.YBottom
		lb.Offset = vg.Point{Y: vg.Points(2)}
	}
	p.Add(lb)
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	return save(p, path, vg.Points(max(560, 80*float64(len(names)))), vg.Points(320))
}

func slicesMin(vs []float64) float64 {
	m := math.Inf(1)
	for _, v := range vs {
		m = min(m, v)
	}
	return m
}

func save(p *plot.Plot, path string, w, h vg.Length) error {
	if err := p.Save(w, h, path); err != nil {
		return fmt.Errorf("harness: chart %s: %w", filepath.Base(path), err)
	}
	return nil
}

// percentileTicks marks an axis of x = log10(1/(1-p)) with the percentiles 0%, 90%, 99%, ...
type percentileTicks struct{}

func (percentileTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for x := math.Ceil(lo); x <= hi; x++ {
		label := "0%"
		if x > 0 {
			label = strconv.FormatFloat(100*(1-math.Pow(10, -x)), 'f', -1, 64) + "%"
		}
		ts = append(ts, plot.Tick{Value: x, Label: label})
	}
	return ts
}

// percentilePoints is h's latency (ms) against x = log10(1/(1-p)) for percentiles p from 0 up
// to where the histogram still holds a value beyond (1/(1-p) = its count), then its maximum.
func percentilePoints(h *hdrhistogram.Histogram) plotter.XYs {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	top := min(math.Log10(float64(n)), 6)
	var pts plotter.XYs
	for x := 0.0; x < top; x += 0.02 {
		q := 100 * (1 - math.Pow(10, -x))
		pts = append(pts, plotter.XY{X: x, Y: float64(h.ValueAtQuantile(q)) / 1e6})
	}
	return append(pts, plotter.XY{X: top, Y: float64(h.Max()) / 1e6})
}

// latencyChart writes the HdrHistogram-style percentile distribution of each implementation
// (its runs' histograms merged) to path; false if no implementation has a histogram.
func (h *harness) latencyChart(path string, sc *scenario) (bool, error) {
	var ss []series
	for _, im := range sc.impls {
		if hist := h.mergedHist(sc.id, im, "latency"); hist != nil {
			ss = append(ss, series{shortLabels[im], percentilePoints(hist)})
		}
	}
	return percentileChart(path, sc.title, sc.latencyName()+" (ms)", ss)
}

// series is one line of a chart.
type series struct {
	name string
	pts  plotter.XYs
}

// percentileChart writes lines of latency against percentile (percentilePoints) to path;
// false if there are none.
func percentileChart(path, title, ylabel string, ss []series) (bool, error) {
	if len(ss) == 0 {
		return false, nil
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.X.Tick.Marker = percentileTicks{}
	p.Y.Label.Text = ylabel
	p.Legend.Top, p.Legend.Left = true, true
	var all []float64
	for _, s := range ss {
		for _, pt := range s.pts {
			all = append(all, pt.Y)
		}
	}
	if wantLog(all) {
		useLog(p, slicesMin(all))
	} else {
		linear(p)
	}
	for i, s := range ss {
		l, err := plotter.NewLine(s.pts)
		if err != nil {
			return false, err
		}
		l.Color, l.Dashes, l.Width = plotutil.Color(i), plotutil.Dashes(i), vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.X.Min = 0
	return true, save(p, path, vg.Points(560), vg.Points(340))
}

// mergedHist merges the histograms tagged tag of every successful run of impl in scenario id,
// or returns nil if there are none.
func (h *harness) mergedHist(id, impl, tag string) *hdrhistogram.Histogram {
	var out *hdrhistogram.Histogram
	for _, m := range h.ms {
		if m.Scenario != id || m.Impl != impl || m.Err != "" || m.Res == nil || m.Res.Hists[tag] == nil {
			continue
		}
		if out == nil {
			out = hdrhistogram.New(1000, 100e9, 3)
		}
		out.Merge(m.Res.Hists[tag])
	}
	if out == nil || out.TotalCount() == 0 {
		return nil
	}
	return out
}

// chartFiles are the charts of a scenario: the bars, and the latency percentiles if any.
func chartFiles(id string) (bars, latency string) { return id + ".png", id + "-latency.png" }

// charts writes, for every scenario run, a chart of its main figure (medians as bars, min-max
// over the runs as whiskers) and one of its latency percentiles, into dir. It records which
// latency charts it wrote, for the report.
func (h *harness) charts(dir string) error {
	h.wrote = map[string]bool{}
	for _, sc := range scenarios {
		if !h.selected(sc) || sc.metric == "" {
			continue
		}
		f, ylabel, show := sc.chartMetric()
		var names []string
		var ss []spread
		for _, im := range sc.impls {
			s := h.stat(sc.id, im, f)
			if !s.ok() {
				continue
			}
			names = append(names, shortLabels[im])
			ss = append(ss, s)
		}
		b, l := chartFiles(sc.id)
		if len(ss) > 0 {
			if err := barChart(filepath.Join(dir, b), sc.title, ylabel, names, ss, show); err != nil {
				return err
			}
			h.wrote[b] = true
		}
		ok, err := h.latencyChart(filepath.Join(dir, l), sc)
		if err != nil {
			return err
		}
		h.wrote[l] = ok
	}
	return h.growthCharts(dir)
}

// chartMetric is what a scenario's bar chart shows, its axis label and how a bar's label reads.
func (sc *scenario) chartMetric() (metric, string, func(float64) string) {
	switch sc.metric {
	case "p99":
		return mP99, "p99 " + sc.latencyName() + " (us)", us
	case "rss":
		return mRSS, "server memory per connection (bytes)", num
	}
	return mThroughput, "replies/s", num
}

// latencyName is what a scenario's latency measures.
func (sc *scenario) latencyName() string {
	if sc.metric == "p99" {
		return "propagation time"
	}
	return "latency"
}
