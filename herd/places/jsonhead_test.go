package places

import (
	"encoding/json"
	"testing"

	"github.com/herd-project/herd/codec"
	"github.com/herd-project/herd/herd/places/fake"
)

func TestScanHead(t *testing.T) {
	for _, tc := range []struct {
		name, body    string
		ok            bool
		status, errMs string // "-": absent
	}{
		{"ok", `{"results":[],"status":"OK"}`, true, "OK", "-"},
		{"denied", `{"error_message":"bad \"key\"","results":[],"status":"REQUEST_DENIED"}`, true, "REQUEST_DENIED", `bad "key"`},
		{"escaped name", `{"st\u0061tus":"O\u004B"}`, true, "OK", "-"},
		{"nested status ignored", `{"a":{"status":"X"},"b":[{"status":"Y"}]}`, true, "-", "-"},
		{"first wins", `{"status":"A","status":"B"}`, true, "A", "-"},
		{"non-string status", `{"status":5,"x":null}`, true, "-", "-"},
		{"white space", " \n{ \"status\" : \"OK\" }\r\n\t", true, "OK", "-"},
		{"empty object", `{}`, true, "-", "-"},
		{"array", `[1]`, false, "", ""},
		{"string", `"status"`, false, "", ""},
		{"empty", ``, false, "", ""},
		{"html", `<html><body>Not JSON & not { closed`, false, "", ""},
		{"unclosed", `{"status":"OK"`, false, "", ""},
		{"trailing", `{"status":"OK"} x`, false, "", ""},
		{"two values", `{} {}`, false, "", ""},
		{"trailing comma", `{"status":"OK",}`, false, "", ""},
		{"control char", "{\"status\":\"O\x01K\"}", false, "", ""},
		{"bad escape", `{"status":"\x"}`, false, "", ""},
		{"bad number", `{"a":01}`, false, "", ""},
		{"bad literal", `{"a":tru}`, false, "", ""},
		{"deep", `{"a":` + deep(20000) + `}`, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := scanHead([]byte(tc.body))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if got := show(h.status); got != tc.status {
				t.Errorf("status = %q, want %q", got, tc.status)
			}
			if got := show(h.errorMessage); got != tc.errMs {
				t.Errorf("error_message = %q, want %q", got, tc.errMs)
			}
		})
	}
}

func deep(n int) string {
	b := make([]byte, 0, 2*n)
	for range n {
		b = append(b, '[')
	}
	for range n {
		b = append(b, ']')
	}
	return string(b)
}

func show(raw []byte) string {
	if raw == nil {
		return "-"
	}
	return text(raw)
}

// FuzzScanHead: scanHead accepts exactly the JSON objects codec accepts, and finds the
// status codec.ParseJSON sees.
func FuzzScanHead(f *testing.F) {
	f.Add([]byte(`{"status":"OK","results":[1,2.5e3,true,null,{"a":"\u00e9"}]}`))
	f.Add([]byte(`{"error_message":"x","status":"INVALID_REQUEST"}`))
	f.Add([]byte(`[{"status":"OK"}]`))
	f.Add(fake.LegacyBody(34.068930, -118.445127, 1000, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := scanHead(b)
		v, err := codec.ParseJSON(b)
		obj, isObj := v.(codec.Object)
		want := err == nil && isObj
		if ok != want {
			t.Fatalf("scanHead ok = %v, codec says valid object %v (%v)", ok, want, err)
		}
		if !ok {
			return
		}
		var status any
		for _, m := range obj {
			if m.Key == "status" {
				status = m.Value
				break
			}
		}
		s, isStr := status.(string)
		if isStr != (h.status != nil) || (isStr && text(h.status) != s) {
			t.Fatalf("status = %q, codec has %#v", show(h.status), status)
		}
	})
}

func BenchmarkScanHead(b *testing.B) {
	body := fake.LegacyBody(34.068930, -118.445127, 10000, 20)
	b.Run("scanHead", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := scanHead(body); !ok {
				b.Fatal("not ok")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			json.Valid(body)
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var h struct {
				Status       *string `json:"status"`
				ErrorMessage string  `json:"error_message"`
			}
			_ = json.Unmarshal(body, &h)
		}
	})
}
