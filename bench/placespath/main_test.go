package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/bench/internal/result"
	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places/fake"
)

// fakeDelay is the fake's answer delay in the tests: no request can take less.
const fakeDelay = 20 * time.Millisecond

// runtimes are the clients under test: how to run each, and why it is skipped when it cannot be.
var runtimes = []struct {
	name string
	skip func() string
	argv func(dir string) []string // nil: the Go client, run in this process
}{
	{name: "go", skip: func() string { return "" }},
	{name: "asyncio", skip: pythonWith("aiohttp"), argv: func(dir string) []string {
		return []string{"/usr/bin/python3", filepath.Join(dir, "client.py")}
	}},
	{name: "uvloop", skip: pythonWith("aiohttp, uvloop"), argv: func(dir string) []string {
		return []string{"/usr/bin/python3", filepath.Join(dir, "client.py"), "-uvloop"}
	}},
	{name: "node", skip: func() string {
		if _, err := exec.LookPath("node"); err != nil {
			return "no node in PATH"
		}
		return ""
	}, argv: func(dir string) []string { return []string{"node", filepath.Join(dir, "client.mjs")} }},
}

func pythonWith(modules string) func() string {
	return func() string {
		if err := exec.Command("/usr/bin/python3", "-c", "import "+modules).Run(); err != nil {
			return "/usr/bin/python3 cannot import " + modules + " (apt-get install python3-aiohttp python3-uvloop)"
		}
		return ""
	}
}

// runClient runs one runtime's client with args and returns its stdout; it fails t if the
// client fails.
func runClient(t *testing.T, argv []string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	var err error
	if argv == nil {
		err = run(ctx, args, &out, &errb)
	} else {
		cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
	}
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, errb.String())
	}
	return out.Bytes()
}

// TestClients runs every runtime's client against the fake for about a second and checks
// what a reader of the harness's table relies on: it asked the fake the legacy Nearby
// Search, every request of the window was answered and counted, the figures are consistent,
// and the body it cut holds the first five of the fake's twenty results.
func TestClients(t *testing.T) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// -locations 1 asks about location 0 alone, so every answer is this body.
	want, err := codec.AppendPlacesBody(nil, fake.LegacyBody(34, -118.5, 10000, 20), 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			if why := rt.skip(); why != "" {
				t.Skip(why)
			}
			var argv []string
			if rt.argv != nil {
				argv = rt.argv(dir)
			}
			f, base := fake.StartTest(t, fake.Options{Delay: fakeDelay})
			bodyFile := filepath.Join(t.TempDir(), "body.json")
			out := runClient(t, argv, "-url", base, "-c", "8", "-d", "1s", "-warmup", "200ms", "-locations", "1",
				"-body", bodyFile)

			var r result.Result
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("output is not a loadgen result: %v\n%s", err, out)
			}
			if r.Scenario != "placespath" || r.Conns != 8 || r.Replies == 0 || r.Errors != 0 {
				t.Fatalf("scenario %q, %d in flight, %d replies, %d errors %v", r.Scenario, r.Conns, r.Replies, r.Errors, r.ErrorSamples)
			}
			if r.Seconds < 0.9 || r.Seconds > 30 || r.WarmupS < 0.19 {
				t.Errorf("window %.3fs after a warm-up of %.3fs, want about 1s after 0.2s", r.Seconds, r.WarmupS)
			}
			if math.Abs(r.Throughput-float64(r.Replies)/r.Seconds) > 1e-6*r.Throughput {
				t.Errorf("throughput %.1f/s, but %d replies in %.3fs", r.Throughput, r.Replies, r.Seconds)
			}
			// Eight in flight, each answer 20 ms late at least: at most 400 a second.
			if most := 8 / fakeDelay.Seconds() * r.Seconds; float64(r.Replies) > most {
				t.Errorf("%d replies in %.3fs: more than %.0f, which 8 in flight allow", r.Replies, r.Seconds, most)
			}
			l := r.Latency
			if l.Count != int64(r.Replies) || l.P50 < float64(fakeDelay.Microseconds()) || l.P50 > l.P99 || l.P99 > l.Max {
				t.Errorf("latency %+v for %d replies: want one per reply, p50 >= the fake's %v, p50 <= p99 <= max", l, r.Replies, fakeDelay)
			}
			if r.CPU.PerRequestUs <= 0 || r.CPU.UserS+r.CPU.SystemS <= 0 || r.WallS < r.Seconds {
				t.Errorf("cpu %+v, wall %.3fs", r.CPU, r.WallS)
			}
			if r.RequestsAll < r.Requests || r.Requests+8 < r.Replies || int64(r.RequestsAll) > f.Count() {
				t.Errorf("%d requests in the window, %d in all, %d replies; the fake counted %d", r.Requests, r.RequestsAll, r.Replies, f.Count())
			}
			for _, q := range f.Requests() {
				if !q.AsksNearby("34.000000,-118.500000", "10000", "bench") {
					t.Fatalf("asked %s %s %v, want the legacy Nearby Search of location 0", q.Method, q.Path, q.Query)
				}
			}

			body, err := os.ReadFile(bodyFile)
			if err != nil {
				t.Fatal(err)
			}
			var results []json.RawMessage
			if err := codec.ScanObject(body, func(name, value []byte) {
				if string(name) == `"results"` {
					_ = json.Unmarshal(value, &results)
				}
			}); err != nil || len(results) != 5 {
				t.Fatalf("cut body: %v, %d results, want 5:\n%.300s", err, len(results), body)
			}
			if !sameJSON(t, body, want) {
				t.Errorf("cut body is not the fake's first five results:\n%.600s\nwant:\n%.600s", body, want)
			}
			if rt.argv == nil && !bytes.Equal(body, want) {
				t.Error("the Go client did not keep the fake's bytes")
			}
		})
	}
}

// sameJSON reports whether a and b hold the same JSON value, whatever their layout.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestClientsRefuseBadFlags checks that each client answers a bad command line with a
// message and a non-zero exit, not a run.
func TestClientsRefuseBadFlags(t *testing.T) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]string{
		{"-d", "1s"}, // no -url
		{"-url", "http://127.0.0.1:9", "-d", "3"},
		{"-url", "http://127.0.0.1:9", "-bound", "21"},
		{"-url", "http://127.0.0.1:9", "-c", "0"},
		{"-url", "http://127.0.0.1:9", "-nope", "1"},
	}
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			if why := rt.skip(); why != "" {
				t.Skip(why)
			}
			for _, args := range bad {
				var errb bytes.Buffer
				if rt.argv == nil {
					if err := run(context.Background(), args, io.Discard, &errb); err == nil {
						t.Errorf("%q: no error", args)
					}
					continue
				}
				argv := rt.argv(dir)
				cmd := exec.Command(argv[0], append(argv[1:], args...)...)
				cmd.Stderr = &errb
				err := cmd.Run()
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.TrimSpace(errb.String()) == "" {
					t.Errorf("%q: %v, stderr %q; want exit status 2 and a message", args, err, errb.String())
				}
			}
		})
	}
}
