package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/herd-project/herd/bench/internal/result"
)

// smokeCheck is the outcome of the smoke test for one implementation.
type smokeCheck struct {
	Impl   string
	Status string // "ok", "not available" or "FAILED"
	Detail string
}

// errSmoke reports that some implementation answered wrongly or could not start.
var errSmoke = errors.New("harness: smoke test failed")

// smoke starts every available implementation briefly and checks that its replies are right:
// IAMAT reply format, WHATSAT reply shape through the fake Places, Redis +OK, and an update
// crossing a herd to a probe.
func (h *harness) smoke(ctx context.Context) error {
	checks := h.smokeChecks(ctx)
	failed := false
	for _, c := range checks {
		fmt.Fprintf(h.stdout, "%-11s %-13s %s\n", c.Impl, c.Status, c.Detail)
		if c.Status == "FAILED" {
			failed = true
		}
	}
	if failed {
		return errSmoke
	}
	return nil
}

func (h *harness) smokeChecks(ctx context.Context) []smokeCheck {
	var out []smokeCheck
	for _, im := range allImpls {
		if len(h.o.impls) > 0 && !h.o.impls[im] {
			continue
		}
		if r, ok := h.t.missing[im]; ok {
			// Missing source is "not available"; source that does not build is a failure.
			status := "not available"
			if strings.HasPrefix(r, "go build") {
				status = "FAILED"
			}
			out = append(out, smokeCheck{Impl: im, Status: status, Detail: r})
			continue
		}
		start := time.Now()
		detail, err := h.smokeOne(ctx, im)
		c := smokeCheck{Impl: im, Status: "ok", Detail: fmt.Sprintf("%s (%.1fs)", detail, time.Since(start).Seconds())}
		if err != nil {
			c.Status, c.Detail = "FAILED", err.Error()
		}
		h.logf("smoke %s: %s %s", im, c.Status, c.Detail)
		out = append(out, c)
	}
	return out
}

// checked runs loadgen with -check and demands every reply right.
func (h *harness) checked(ctx context.Context, what string, args ...string) (*result.Result, error) {
	r, err := h.loadgen(ctx, "smoke", what, append(args, "-check")...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if r.Errors > 0 || r.Replies == 0 || r.Checked != r.Replies {
		return nil, fmt.Errorf("%s: %d replies, %d checked, %d errors %v %s", what, r.Replies, r.Checked, r.Errors, r.ErrorKinds, strings.Join(r.ErrorSamples, "; "))
	}
	return r, nil
}

func (h *harness) smokeOne(ctx context.Context, impl string) (string, error) {
	tag := h.tag("smoke", impl)
	tp, err := newTopology("single")
	if err != nil {
		return "", err
	}
	n := []string{"-n", "400", "-d", "20s", "-c", "4", "-P", "4"}
	if impl == implRedis {
		d, err := h.startServers(ctx, "smoke", impl, tp, tag)
		if err != nil {
			return "", err
		}
		defer d.stop()
		if _, err := h.checked(ctx, "SET", append([]string{"-scenario", "raw", "-addr", tp.servers[0].addr()}, n...)...); err != nil {
			return "", err
		}
		return "inline SET answered +OK", nil
	}
	places := "fake Places"
	if _, ok := h.t.bin["fakeplaces"]; ok {
		fake, url, err := h.startFake(ctx, "smoke", 0, tag)
		if err != nil {
			return "", err
		}
		defer fake.stop()
		tp.placesURL = url
	} else {
		places = "the offline provider (fake Places not available)"
	}
	d, err := h.startServers(ctx, "smoke", impl, tp, tag)
	if err != nil {
		return "", err
	}
	addr := tp.servers[0].addr()
	_, err = h.checked(ctx, "IAMAT", append([]string{"-scenario", "iamat", "-addr", addr, "-server", "Hill"}, n...)...)
	if err == nil {
		_, err = h.checked(ctx, "WHATSAT", "-scenario", "whatsat", "-addr", addr, "-server", "Hill", "-clients", "40",
			"-n", "40", "-d", "20s", "-c", "4", "-bound", "3")
	}
	if err == nil {
		err = d.check()
	}
	d.stop()
	if err != nil {
		return "", err
	}

	// Flooding: Hill -> Jaquez -> Probe (loadgen).
	tp2 := &topology{servers: []server{{name: "Hill", peers: []string{"Jaquez"}}, {name: "Jaquez", peers: []string{"Hill"}}}}
	for i := range tp2.servers {
		if err = tp2.servers[i].takePorts(); err != nil {
			return "", err
		}
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	tp2.probe, tp2.probeOf = fmt.Sprintf("127.0.0.1:%d", port), "Jaquez"
	d2, err := h.startServers(ctx, "smoke", impl, tp2, tag+"-herd")
	if err != nil {
		return "", err
	}
	defer d2.stop()
	r, err := h.loadgen(ctx, "smoke", "propagation", "-scenario", "propagation", "-addr", tp2.servers[0].addr(), "-listen", tp2.probe,
		"-rate", "200", "-c", "1", "-d", "500ms", "-link-wait", "20s")
	if err != nil {
		return "", fmt.Errorf("propagation: %w", err)
	}
	if r.Sent == 0 || r.Received != r.Sent || r.Errors > 0 {
		return "", fmt.Errorf("propagation: sent %d received %d errors %d %s", r.Sent, r.Received, r.Errors, strings.Join(r.ErrorSamples, "; "))
	}
	if err := d2.check(); err != nil {
		return "", err
	}
	return fmt.Sprintf("IAMAT and WHATSAT (through %s) replies right; %d updates crossed Hill -> Jaquez -> probe (p99 %s)", places, r.Received, us(r.Latency.P99)), nil
}
