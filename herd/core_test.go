package herd

import (
	"errors"
	"strings"
	"testing"

	"github.com/herd-project/herd/codec"
)

// TestCoreHandle is the table of what the core decides for each kind of line from each
// origin.
func TestCoreHandle(t *testing.T) {
	recv := codec.Time{Sec: 1621464828, Nsec: 223371889}
	const (
		iamat   = "IAMAT kiwi +34.068930-118.445127 1621464827.959498503"
		reply   = "AT Hill +0.263873386 kiwi +34.068930-118.445127 1621464827.959498503"
		whatsat = "WHATSAT kiwi 10 5"
		at      = "AT Zed +0.000000001 kiwi +1+1 5"
		oddAT   = " AT\tZed  +0.000000001 \vkiwi\t+1+1 5 \r"
		pyAT    = "AT Jaquez +1.1e-05 kiwi +1+1 5"
		named   = "AT Jaquez +0.001401662826538086 kiwi +1+1 5 Jaquez Singleton"
		record  = "AT Jaquez +0.001401662826538086 kiwi +1+1 5"
	)
	all := []Origin{FromClient, FromNeighbourHost, FromLink, FromPlainHost, FromPlainLink}
	type want struct {
		action Action
		reply  string // "" for none
		line   string // Store only
		err    error
	}
	for _, c := range []struct {
		in   string
		want map[Origin]want
	}{
		{iamat, map[Origin]want{
			FromClient:        {Store, reply + "\n", reply, nil},
			FromNeighbourHost: {Store, reply + "\n", reply, nil},
			FromLink:          {Ignore, "", "", ErrNotAT},
			FromPlainHost:     {Store, reply + "\n", reply, nil},
			FromPlainLink:     {Ignore, "", "", ErrNotAT},
		}},
		{"\t IAMAT  kiwi +34.068930-118.445127\v1621464827.959498503 ", map[Origin]want{
			FromClient: {Store, reply + "\n", reply, nil}, // the reply is canonical too
		}},
		{whatsat, map[Origin]want{
			FromClient:        {AskPlaces, "", "", nil},
			FromNeighbourHost: {AskPlaces, "", "", nil},
			FromLink:          {Ignore, "", "", ErrNotAT},
		}},
		{at, map[Origin]want{
			FromClient:        {Close, "? " + at + "\n", "", ErrNotNeighbour},
			FromNeighbourHost: {Store, "", at, nil},
			FromLink:          {Store, "", at, nil},
			FromPlainHost:     {Store, "", at, nil},
			FromPlainLink:     {Store, "", at, nil},
		}},
		// A Python float skew, and names after the six fields: a plain peer's alone.
		{pyAT, map[Origin]want{
			FromClient:        {Close, "? " + pyAT + "\n", "", codec.ErrInvalid},
			FromNeighbourHost: {Close, "? " + pyAT + "\n", "", codec.ErrInvalid},
			FromLink:          {Ignore, "", "", codec.ErrInvalid},
			FromPlainHost:     {Store, "", pyAT, nil},
			FromPlainLink:     {Store, "", pyAT, nil},
		}},
		{named, map[Origin]want{
			FromClient:        {Close, "? " + named + "\n", "", codec.ErrInvalid},
			FromNeighbourHost: {Close, "? " + named + "\n", "", codec.ErrInvalid},
			FromLink:          {Ignore, "", "", codec.ErrInvalid},
			FromPlainHost:     {Store, "", record, nil},
			FromPlainLink:     {Store, "", record, nil},
		}},
		{"OK", map[Origin]want{
			FromPlainHost: {Close, "? OK\n", "", codec.ErrInvalid},
			FromPlainLink: {Ignore, "", "", codec.ErrInvalid},
		}},
		{oddAT, map[Origin]want{
			FromClient:        {Close, "? " + oddAT + "\n", "", ErrNotNeighbour},
			FromNeighbourHost: {Store, "", at, nil},
			FromLink:          {Store, "", at, nil},
		}},
		{"", map[Origin]want{
			FromClient:        {Close, "? \n", "", codec.ErrInvalid},
			FromNeighbourHost: {Close, "? \n", "", codec.ErrInvalid},
			FromLink:          {Ignore, "", "", codec.ErrInvalid},
		}},
		{"HELLO there", map[Origin]want{
			FromClient:        {Close, "? HELLO there\n", "", codec.ErrInvalid},
			FromNeighbourHost: {Close, "? HELLO there\n", "", codec.ErrInvalid},
			FromLink:          {Ignore, "", "", codec.ErrInvalid},
		}},
		{"AT Zed +0.1 kiwi +91+1 5", map[Origin]want{
			FromNeighbourHost: {Close, "? AT Zed +0.1 kiwi +91+1 5\n", "", codec.ErrInvalid},
			FromLink:          {Ignore, "", "", codec.ErrInvalid},
		}},
		// Client IDs with control characters are refused wherever they come from: stored,
		// they would be flooded to every server and echoed to every WHATSAT reader.
		{"IAMAT ki\x00wi +1+1 5", map[Origin]want{
			FromClient:        {Close, "? IAMAT ki\x00wi +1+1 5\n", "", ErrBadClientID},
			FromNeighbourHost: {Close, "? IAMAT ki\x00wi +1+1 5\n", "", ErrBadClientID},
			FromLink:          {Ignore, "", "", ErrBadClientID},
		}},
		{"WHATSAT \x1b[2Jkiwi 10 5", map[Origin]want{
			FromClient: {Close, "? WHATSAT \x1b[2Jkiwi 10 5\n", "", ErrBadClientID},
		}},
		{"AT Zed +0.1 ki\x7fwi +1+1 5", map[Origin]want{
			FromNeighbourHost: {Close, "? AT Zed +0.1 ki\x7fwi +1+1 5\n", "", ErrBadClientID},
			FromLink:          {Ignore, "", "", ErrBadClientID},
		}},
		{"IAMAT " + strings.Repeat("x", MaxClientIDLen+1) + " +1+1 5", map[Origin]want{
			FromClient: {Close, "? IAMAT " + strings.Repeat("x", MaxClientIDLen+1) + " +1+1 5\n", "", ErrBadClientID},
		}},
		// A time more than max_clock_skew (1h) ahead of the server's clock: "?" for an
		// IAMAT, dropped from a neighbour; an hour ahead exactly, or any past time, is taken.
		{"IAMAT zed +00+000 999999999999999999", map[Origin]want{
			FromClient:        {Close, "? IAMAT zed +00+000 999999999999999999\n", "", ErrClockSkew},
			FromNeighbourHost: {Close, "? IAMAT zed +00+000 999999999999999999\n", "", ErrClockSkew},
			FromLink:          {Ignore, "", "", ErrNotAT},
		}},
		{"IAMAT zed +1+1 1621468428.223371890", map[Origin]want{
			FromClient: {Close, "? IAMAT zed +1+1 1621468428.223371890\n", "", ErrClockSkew},
		}},
		{"IAMAT zed +1+1 1621468428.223371889", map[Origin]want{
			FromClient: {Store, "AT Hill -3600.000000000 zed +1+1 1621468428.223371889\n", "AT Hill -3600.000000000 zed +1+1 1621468428.223371889", nil},
		}},
		{"IAMAT zed +1+1 -999999999999999999", map[Origin]want{
			FromClient: {Store, "AT Hill +1000000001621464827.223371889 zed +1+1 -999999999999999999\n", "AT Hill +1000000001621464827.223371889 zed +1+1 -999999999999999999", nil},
		}},
		{"AT Zed +0.1 zed +1+1 999999999999999999", map[Origin]want{
			FromClient:        {Close, "? AT Zed +0.1 zed +1+1 999999999999999999\n", "", ErrNotNeighbour},
			FromNeighbourHost: {Ignore, "", "", ErrClockSkew},
			FromLink:          {Ignore, "", "", ErrClockSkew},
		}},
		{"AT Zed +0.1 zed +1+1 1621468428.223371889", map[Origin]want{
			FromLink: {Store, "", "AT Zed +0.1 zed +1+1 1621468428.223371889", nil},
		}},
		{"IAMAT Zürich·北京 +1+1 5", map[Origin]want{
			FromClient: {Store, "AT Hill +1621464823.223371889 Zürich·北京 +1+1 5\n", "AT Hill +1621464823.223371889 Zürich·北京 +1+1 5", nil},
		}},
	} {
		for _, from := range all {
			w, ok := c.want[from]
			if !ok {
				continue
			}
			core := NewCore("Hill")
			r := core.Handle([]byte(c.in), recv, from)
			if r.Action != w.action || string(r.Reply) != w.reply || string(r.Line) != w.line || !errors.Is(r.Err, w.err) || (w.err == nil) != (r.Err == nil) {
				t.Errorf("Handle(%q, %d) = %v %q %q %v; want %v %q %q %v", c.in, from, r.Action, r.Reply, r.Line, r.Err, w.action, w.reply, w.line, w.err)
			}
			if (r.Action == Store || r.Action == AskPlaces) && (r.Msg == nil || r.Msg.Kind == codec.Invalid) {
				t.Errorf("Handle(%q, %d): %v without its message", c.in, from, r.Action)
			}
		}
	}
}

// TestValidClientID: text of 1 to 256 bytes without control characters is a client ID;
// control bytes (C0, DEL, C1), bytes that are not UTF-8 and longer IDs are not.
func TestValidClientID(t *testing.T) {
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"kiwi.cs.ucla.edu", true},
		{"x", true},
		{strings.Repeat("x", MaxClientIDLen), true},
		{strings.Repeat("é", MaxClientIDLen/2), true},
		{"Zürich", true},
		{"北京", true},
		{"\u00a0nbsp", true},        // not a control, nor a field separator
		{"\ufffdreplacement", true}, // the character itself, well encoded
		{"", false},
		{strings.Repeat("x", MaxClientIDLen+1), false},
		{"ki\x00wi", false},
		{"\x1b[31mred", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"c1\u009b[2J", false},
		{"bad\xffutf8", false},
		{"cut\xe5", false},
		{"surrogate\xed\xa0\x80", false},
		{"overlong\xc0\xaf", false},
	} {
		if got := ValidClientID([]byte(c.id)); got != c.want {
			t.Errorf("ValidClientID(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}

func TestCoreTooLongAndUnknownClient(t *testing.T) {
	core := NewCore("Hill")
	echo := []byte(strings.Repeat("x", codec.TooLongEcho))
	if r := core.TooLong(echo, FromClient); r.Action != Close || string(r.Reply) != "? "+string(echo)+"\n" || r.Err != codec.ErrLineTooLong {
		t.Errorf("TooLong from a client = %v %q %v", r.Action, r.Reply, r.Err)
	}
	if r := core.TooLong(echo, FromLink); r.Action != Abort || r.Reply != nil || r.Err != codec.ErrLineTooLong {
		t.Errorf("TooLong on a link = %v %q %v", r.Action, r.Reply, r.Err)
	}
	if r := core.TooLong(echo, FromPlainLink); r.Action != Ignore || r.Reply != nil || r.Err != codec.ErrLineTooLong {
		t.Errorf("TooLong on a plain peer's link = %v %q %v", r.Action, r.Reply, r.Err)
	}
	line := []byte("WHATSAT nobody 10 5")
	if r := core.UnknownClient(line, FromNeighbourHost); r.Action != Close || string(r.Reply) != "? WHATSAT nobody 10 5\n" || r.Err != ErrUnknownClient {
		t.Errorf("UnknownClient = %v %q %v", r.Action, r.Reply, r.Err)
	}
}

// The core allocates nothing once its buffer has grown: it is on the path of every line.
func TestCoreDoesNotAllocate(t *testing.T) {
	core := NewCore("Hill")
	recv := codec.Time{Sec: 1621464828}
	lines := [][]byte{
		[]byte("IAMAT kiwi +34.068930-118.445127 1621464827.959498503"),
		[]byte(" AT\tZed  +0.000000001 kiwi +1+1 5"),
		[]byte("WHATSAT kiwi 10 5"),
		[]byte("BAD"),
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, l := range lines {
			core.Handle(l, recv, FromNeighbourHost)
		}
	}); n != 0 {
		t.Errorf("%v allocations per round", n)
	}
}

func TestNewPlacesRequest(t *testing.T) {
	tab := NewTable()
	m := parseAT(t, "AT Hill +0.1 kiwi +34.068930-118.445127 5")
	tab.Apply(m, []byte("AT Hill +0.1 kiwi +34.068930-118.445127 5"))
	w, err := codec.ParseLine([]byte("WHATSAT kiwi 0.0015 7"))
	if err != nil {
		t.Fatal(err)
	}
	req := NewPlacesRequest(tab.Get([]byte("kiwi")), &w)
	if req.Lat != "+34.068930" || req.Lng != "-118.445127" || req.RadiusM != "1.5" || req.RadiusMF != 1.5 || req.Bound != 7 || req.LatF != 34.06893 {
		t.Errorf("NewPlacesRequest = %+v", req)
	}
}

func TestAppendPlacesAnswer(t *testing.T) {
	body := []byte("{\n   \"results\" : [ 1, 2, 3 ],\n   \"status\" : \"OK\"\n}\n")
	if got, rej := AppendPlacesAnswer(nil, body, nil, 2); rej != nil || string(got) != "{\n   \"results\" : [ 1, 2 ],\n   \"status\" : \"OK\"\n}" {
		t.Errorf("a body cut to 2: %q, %v", got, rej)
	}
	denied := []byte("{\n   \"error_message\" : \"no\",\n   \"status\" : \"REQUEST_DENIED\"\n}\n")
	if got, rej := AppendPlacesAnswer(nil, denied, nil, 2); rej != nil || string(got) != strings.TrimSuffix(string(denied), "\n") {
		t.Errorf("a status body: %q, %v", got, rej)
	}
	if got, rej := AppendPlacesAnswer(nil, nil, errors.New("places: timeout"), 2); rej != nil || !strings.Contains(string(got), `"error_message" : "places: timeout"`) || !strings.Contains(string(got), `"UNKNOWN_ERROR"`) {
		t.Errorf("no body: %q, %v", got, rej)
	}
	if got, rej := AppendPlacesAnswer(nil, []byte("<html>"), nil, 2); rej == nil || !strings.Contains(string(got), `"UNKNOWN_ERROR"`) {
		t.Errorf("not JSON: %q, %v", got, rej)
	}
}
