package main

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
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

// rangeBars are min-max error bars around medians.
type rangeBars struct{ s []spread }

func (r rangeBars) Len() int                    { return len(r.s) }
func (r rangeBars) XY(i int) (float64, float64) { return float64(i), r.s[i].Med }
func (r rangeBars) YError(i int) (float64, float64) {
	return r.s[i].Med - r.s[i].Min, r.s[i].Max - r.s[i].Med
}

// charts writes one PNG per scenario into dir: medians as bars, min-max as error bars.
func (h *harness) charts(dir string) error {
	for _, sc := range scenarios {
		if len(h.o.only) > 0 && !h.o.only[sc.id] {
			continue
		}
		var f metric
		ylabel := ""
		switch sc.metric {
		case "throughput":
			f, ylabel = mThroughput, "replies/s"
		case "p99":
			f, ylabel = mP99, "p99 propagation time (us)"
		case "rss":
			f, ylabel = mRSS, "server memory per connection (bytes)"
		}
		var names []string
		var vals plotter.Values
		var ss []spread
		for _, im := range sc.impls {
			s := h.stat(sc.id, im, f)
			if !s.ok() {
				continue
			}
			names = append(names, shortLabels[im])
			vals = append(vals, s.Med)
			ss = append(ss, s)
		}
		if len(vals) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = sc.title
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		bars, err := plotter.NewBarChart(vals, vg.Points(28))
		if err != nil {
			return err
		}
		bars.LineStyle.Width = vg.Length(0)
		bars.Color = color.RGBA{R: 70, G: 130, B: 180, A: 255}
		p.Add(bars)
		eb, err := plotter.NewYErrorBars(rangeBars{ss})
		if err != nil {
			return err
		}
		p.Add(eb)
		p.NominalX(names...)
		if err := p.Save(vg.Points(560), vg.Points(300), filepath.Join(dir, sc.id+".png")); err != nil {
			return fmt.Errorf("harness: chart %s: %w", sc.id, err)
		}
	}
	return nil
}
