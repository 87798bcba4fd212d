package places

import "github.com/herd-project/herd/codec"

// head is what a legacy body says at its top level: the raw tokens (quotes and escapes
// included) of the first "status" and "error_message" members, when they are strings.
type head struct {
	status, errorMessage []byte // nil: absent or not a string
}

// scanHead validates body as one JSON object (codec.IndexPlaces: RFC 8259, white space around
// it allowed) and finds its top-level "status" and "error_message" members when they are
// strings (names compared after unescaping; the first of each counts). ok is false when body
// is not valid JSON or not an object. One pass, no allocation: a fraction of what
// json.Unmarshal of a full 20-result page costs.
func scanHead(body []byte) (h head, ok bool) {
	ix, err := codec.IndexPlaces(body)
	if err != nil {
		return head{}, false
	}
	return headOf(body, &ix)
}

// headOf is scanHead for a body already indexed.
func headOf(body []byte, ix *codec.PlacesIndex) (h head, ok bool) {
	if !ix.Object() {
		return head{}, false
	}
	return head{status: stringToken(ix.Status(body)), errorMessage: stringToken(ix.ErrorMessage(body))}, true
}

// stringToken returns raw if it is a JSON string token, else nil.
func stringToken(raw []byte) []byte {
	if len(raw) == 0 || raw[0] != '"' {
		return nil
	}
	return raw
}

// text returns the unescaped string of a raw string token found by scanHead.
func text(raw []byte) string {
	if len(raw) < 2 {
		return ""
	}
	if !hasByte(raw[1:len(raw)-1], '\\') {
		return string(raw[1 : len(raw)-1])
	}
	v, err := codec.ParseJSON(raw)
	if s, ok := v.(string); ok && err == nil {
		return s
	}
	return ""
}

// rawIs reports whether the raw string token raw is the string want (want has no
// characters that JSON must escape). Escaped tokens are unescaped first.
func rawIs(raw []byte, want string) bool {
	if len(raw) < 2 {
		return false
	}
	if !hasByte(raw, '\\') {
		return string(raw[1:len(raw)-1]) == want
	}
	return text(raw) == want
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}
