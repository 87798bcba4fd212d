package asyncio_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-project/herd/herd/places/fake"
	"github.com/herd-project/herd/internal/testutil"
)

func TestWhatsat(t *testing.T) {
	eachDesign(t, testWhatsat)
}

func testWhatsat(t *testing.T, script string) {
	needPython(t)
	f, base := fake.StartTest(t, fake.Options{})
	addr := oneScript(t, script, testutil.Config{PlacesURL: base, PlacesTimeout: "2s"})
	at := strings.TrimSuffix(testutil.Exchange(t, addr, "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\n"), "\n")

	for _, bound := range []int{1, 5, 20} {
		f.Reset()
		got := testutil.Exchange(t, addr, "WHATSAT kiwi 10 "+strconv.Itoa(bound)+"\n")
		body, ok := strings.CutPrefix(got, at+"\n")
		if !ok {
			t.Fatalf("WHATSAT reply %q does not start with %q", got, at)
		}
		if !strings.HasSuffix(body, "}\n\n") || strings.Count(body, "\n\n") != 1 {
			t.Fatalf("body does not end with one blank line: %q", body)
		}
		var reply struct {
			Results []any  `json:"results"`
			Status  string `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &reply); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, body)
		}
		if reqs := f.Requests(); len(reqs) != 1 || !reqs[0].AsksNearby("34.068930,-118.445127", "10000", "test-key") {
			t.Fatalf("Places asked %+v, want one search near UCLA within 10000 m with the key", reqs)
		}
		var google struct {
			Results []any `json:"results"`
		}
		if err := json.Unmarshal(fake.LegacyBody(34.068930, -118.445127, 10000, 20), &google); err != nil {
			t.Fatal(err)
		}
		if reply.Status != "OK" || !reflect.DeepEqual(reply.Results, google.Results[:bound]) {
			t.Errorf("bound %d: status %q, %d results; want OK and the first %d of Google's", bound, reply.Status, len(reply.Results), bound)
		}
	}

	for _, c := range []struct {
		name   string
		opts   fake.Options
		status string
	}{
		{"denied passes through", fake.Options{Status: "REQUEST_DENIED", StatusMessage: "The provided API key is invalid."}, "REQUEST_DENIED"},
		{"zero results", fake.Options{Results: -1}, "ZERO_RESULTS"},
		{"HTTP error", fake.Options{HTTPStatus: 500}, "UNKNOWN_ERROR"},
		{"not JSON", fake.Options{Malformed: true}, "UNKNOWN_ERROR"},
		{"timeout", fake.Options{Delay: 10 * time.Second}, "UNKNOWN_ERROR"},
	} {
		f.Set(c.opts)
		got := testutil.Exchange(t, addr, "WHATSAT kiwi 1.5 3\n")
		body, ok := strings.CutPrefix(got, at+"\n")
		if !ok || !strings.HasSuffix(body, "}\n\n") {
			t.Errorf("%s: reply %q", c.name, got)
			continue
		}
		var reply struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.Status != c.status {
			t.Errorf("%s: status %q (%v), want %q in %q", c.name, reply.Status, err, c.status, body)
		}
	}
}
