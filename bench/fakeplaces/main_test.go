package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
	"github.com/valyala/fasthttp"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.SyncBuffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-status", "REQUEST_DENIED", "-message", "no & no"}, out, io.Discard)
	}()
	var base string
	testutil.WaitFor(t, "the base URL", func() bool {
		line, _, ok := strings.Cut(out.String(), "\n")
		base = strings.TrimSpace(line)
		return ok
	})
	status, body, err := fasthttp.GetTimeout(nil, base+"/maps/api/place/nearbysearch/json?location=1,2&radius=3&key=k", 5*time.Second)
	if err != nil || status != 200 || !strings.Contains(string(body), `"error_message" : "no & no"`) || !strings.Contains(string(body), `"REQUEST_DENIED"`) {
		t.Errorf("HTTP %d %v\n%s", status, err, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestRunBadFlags(t *testing.T) {
	if err := run(context.Background(), []string{"-nope"}, io.Discard, io.Discard); err == nil {
		t.Error("bad flag: no error")
	}
	if err := run(context.Background(), []string{"extra"}, io.Discard, io.Discard); err == nil {
		t.Error("extra argument: no error")
	}
}
