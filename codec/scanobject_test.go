package codec

import (
	"errors"
	"testing"
)

func TestScanObject(t *testing.T) {
	body := []byte("{\n   \"html_attributions\" : [],\n   \"results\" : [ { \"status\" : \"inner\" } ],\n   \"st\\u0061tus\" : \"OK\"\n}\n")
	var names, values []string
	err := ScanObject(body, func(name, value []byte) {
		names = append(names, string(name))
		values = append(values, string(value))
	})
	if err != nil {
		t.Fatalf("ScanObject: %v", err)
	}
	wantN := []string{`"html_attributions"`, `"results"`, `"st\u0061tus"`}
	wantV := []string{`[]`, `[ { "status" : "inner" } ]`, `"OK"`}
	if len(names) != len(wantN) {
		t.Fatalf("names = %q, want %q", names, wantN)
	}
	for i := range wantN {
		if names[i] != wantN[i] || values[i] != wantV[i] {
			t.Errorf("member %d = %s : %s, want %s : %s", i, names[i], values[i], wantN[i], wantV[i])
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"a":}`, `{"a":1} x`, `{"a":1`} {
		if err := ScanObject([]byte(bad), func(_, _ []byte) {}); !errors.Is(err, ErrJSON) {
			t.Errorf("ScanObject(%q) = %v, want ErrJSON", bad, err)
		}
	}
}

func TestScanObjectAllocs(t *testing.T) {
	body := []byte(`{"status" : "OK", "results" : [1, 2, {"a" : [true, null]}]}`)
	n := 0
	count := func(_, _ []byte) { n++ }
	if a := testing.AllocsPerRun(100, func() { _ = ScanObject(body, count) }); a != 0 {
		t.Errorf("ScanObject allocates %v times per call, want 0", a)
	}
}
