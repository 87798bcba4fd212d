package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const (
	inst  = "0123456789abcdef"
	nonce = "0123456789abcdef0123456789abcdef"
	proof = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseHello(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen)
	for _, tt := range []struct {
		line     string
		err      error
		from, to string
		proof    string
		version  int
	}{
		{"HELLO 1 Hill Jaquez " + inst + " " + nonce, nil, "Hill", "Jaquez", "", 1},
		{"HELLO 1 Hill Jaquez " + inst + " " + nonce + " " + proof, nil, "Hill", "Jaquez", proof, 1},
		{" HELLO\t1  Hill Jaquez " + inst + " " + nonce + " \r", nil, "Hill", "Jaquez", "", 1},
		{"HELLO 1 " + long + " " + long + " " + inst + " " + nonce, nil, long, long, "", 1},
		{"HELLO 2 Hill Jaquez whatever", ErrLinkVersion, "Hill", "", "", 2},
		{"HELLO 0", ErrLinkVersion, "", "", "", 0},
		{"HELLO 01 Hill Jaquez " + inst + " " + nonce, nil, "Hill", "Jaquez", "", 1},
		{"HELLO", ErrHello, "", "", "", 0},
		{"HELLO x Hill Jaquez " + inst + " " + nonce, ErrHello, "", "", "", 0},
		{"HELLO 1234567890 Hill Jaquez " + inst + " " + nonce, ErrHello, "", "", "", 0},
		{"hello 1 Hill Jaquez " + inst + " " + nonce, ErrHello, "", "", "", 0},
		{"HELLO 1 Hill Jaquez " + inst, ErrHello, "", "", "", 0},
		{"HELLO 1 Hill Jaquez " + inst + " " + nonce + " " + proof + " extra", ErrHello, "", "", "", 0},
		{"HELLO 1 Hill Jaquez " + strings.ToUpper(inst) + " " + nonce, ErrHello, "", "", "", 0},
		{"HELLO 1 Hill Jaquez " + inst + " " + nonce[1:], ErrHello, "", "", "", 0},
		{"HELLO 1 Hill Jaquez " + inst + " " + nonce + " " + proof[1:], ErrHello, "", "", "", 0},
		{"HELLO 1 " + long + "x Jaquez " + inst + " " + nonce, ErrHello, "", "", "", 0},
		{"AT Hill +0.1 kiwi +1+1 5", ErrHello, "", "", "", 0},
	} {
		h, err := ParseHello([]byte(tt.line))
		if !errors.Is(err, tt.err) || string(h.From) != tt.from || string(h.To) != tt.to || string(h.Proof) != tt.proof || h.Version != tt.version {
			t.Errorf("ParseHello(%q) = %d %q %q %q, %v; want %d %q %q %q, %v", tt.line, h.Version, h.From, h.To, h.Proof, err,
				tt.version, tt.from, tt.to, tt.proof, tt.err)
		}
	}
}

func TestAppendHelloRoundTrip(t *testing.T) {
	for _, p := range []string{"", proof} {
		h := Hello{Version: LinkVersion, From: []byte("Hill"), To: []byte("Jaquez"), Instance: []byte(inst), Nonce: []byte(nonce)}
		if p != "" {
			h.Proof = []byte(p)
		}
		line := AppendHello(nil, &h)
		want := "HELLO 1 Hill Jaquez " + inst + " " + nonce
		if p != "" {
			want += " " + p
		}
		if string(line) != want+"\n" {
			t.Errorf("AppendHello = %q, want %q", line, want+"\n")
		}
		got, err := ParseHello(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil || string(got.From) != "Hill" || string(got.Proof) != p {
			t.Errorf("ParseHello(AppendHello) = %+v, %v", got, err)
		}
	}
}

func TestAuthAndError(t *testing.T) {
	line := AppendAuth(nil, []byte(proof))
	if string(line) != "AUTH "+proof+"\n" {
		t.Errorf("AppendAuth = %q", line)
	}
	if p, err := ParseAuth(bytes.TrimSuffix(line, []byte("\n"))); err != nil || string(p) != proof {
		t.Errorf("ParseAuth = %q, %v", p, err)
	}
	for _, bad := range []string{"AUTH", "AUTH " + proof[1:], "AUTH " + proof + " x", "AT Hill +0.1 kiwi +1+1 5"} {
		if _, err := ParseAuth([]byte(bad)); !errors.Is(err, ErrAuth) {
			t.Errorf("ParseAuth(%q): %v, want ErrAuth", bad, err)
		}
	}
	if got := AppendLinkError(nil, "bad\nthing\x00"); string(got) != "ERR bad thing \n" {
		t.Errorf("AppendLinkError = %q", got)
	}
}

func TestParseHelloDoesNotAllocate(t *testing.T) {
	line := []byte("HELLO 1 Hill Jaquez " + inst + " " + nonce + " " + proof)
	if n := testing.AllocsPerRun(100, func() { ParseHello(line) }); n != 0 {
		t.Errorf("ParseHello allocates %v times", n)
	}
}

// FuzzParseHello checks that ParseHello never panics and that what it accepts is written
// back by AppendHello as one canonical line that parses to the same fields.
func FuzzParseHello(f *testing.F) {
	f.Add([]byte("HELLO 1 Hill Jaquez " + inst + " " + nonce))
	f.Add([]byte("HELLO 1 Hill Jaquez " + inst + " " + nonce + " " + proof))
	f.Add([]byte("HELLO 2 Hill"))
	f.Add([]byte("\tHELLO 1 a b " + inst + " " + nonce + "\r"))
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := ParseHello(line)
		if err != nil {
			if !errors.Is(err, ErrHello) && !errors.Is(err, ErrLinkVersion) {
				t.Fatalf("ParseHello(%q): %v", line, err)
			}
			return
		}
		out := AppendHello(nil, &h)
		if bytes.Count(out, []byte("\n")) != 1 {
			t.Fatalf("AppendHello(%q) = %q: not one line", line, out)
		}
		g, err := ParseHello(out[:len(out)-1])
		if err != nil || !bytes.Equal(g.From, h.From) || !bytes.Equal(g.To, h.To) || !bytes.Equal(g.Nonce, h.Nonce) ||
			!bytes.Equal(g.Instance, h.Instance) || !bytes.Equal(g.Proof, h.Proof) || g.Version != h.Version {
			t.Fatalf("round trip of %q: %q -> %+v, %v", line, out, g, err)
		}
	})
}
