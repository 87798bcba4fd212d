package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-status", "REQUEST_DENIED", "-message", "no & no"}, out, io.Discard)
	}()
	deadline := time.Now().Add(10 * time.Second)
	var base string
	for base == "" {
		if time.Now().After(deadline) {
			t.Fatal("no base URL printed")
		}
		if line, err := bufio.NewReader(strings.NewReader(out.String())).ReadString('\n'); err == nil {
			base = strings.TrimSpace(line)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
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
