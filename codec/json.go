package codec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Object is a JSON object. AppendStyled writes its members with keys sorted byte-wise
// (stably, so duplicate keys keep their order); ParseJSON keeps the input's order.
type Object []Member

// Member is one name/value pair of an Object.
type Member struct {
	Key   string
	Value any
}

// Array is a JSON array.
type Array []any

// Number is a JSON number token, written verbatim (so a body passes through without a
// float64 round trip). AppendStyled does not check it.
type Number string

// rightMargin is jsoncpp StyledWriter's line width: an array whose one-line form would
// be this wide or wider goes one element a line.
const rightMargin = 74

// AppendStyled appends v as JSON in Google's layout, jsoncpp's StyledWriter (see
// fixtures/places/README.md), ending with "\n":
//   - 3-space indentation, `"key" : value`, object keys sorted byte-wise, "{}" and "[]"
//     when empty, a non-empty object or array opening on its key's line;
//   - an array is written on one line as "[ a, b ]" when no element is a non-empty array or
//     object, 3*len < 74, and the one-line text is shorter than 74 bytes (jsoncpp's
//     lineLength = 4 + (len-1)*2 + the elements' lengths); otherwise one element a line;
//   - float64 as C "%.16g" (NaN and infinities as null), integers in decimal, Number verbatim;
//   - strings with `"`, `\` and control characters escaped (\b \f \n \r \t, else \u00xx),
//     "<" and ">" as \u003c and \u003e, everything else (&, /, non-ASCII UTF-8) raw.
//
// v may be nil, bool, string, Number, int, int32, int64, uint, uint32, uint64, float32,
// float64, Object, Array, []any, []string or map[string]any (keys sorted); any other type
// panics, as a programming error. Safe to call from any goroutine; it does not keep v.
func AppendStyled(dst []byte, v any) []byte {
	w := styled{buf: dst, start: len(dst)}
	w.value(v)
	return append(w.buf, '\n')
}

// styled is a port of jsoncpp's StyledWriter onto an append buffer.
type styled struct {
	buf    []byte
	start  int // where the document begins in buf
	indent int // in levels of 3 spaces
}

// writeIndent is StyledWriter::writeIndent: a new line unless already indented.
func (w *styled) writeIndent() {
	if len(w.buf) > w.start {
		switch w.buf[len(w.buf)-1] {
		case ' ':
			return // already indented (after " : ")
		case '\n':
		default:
			w.buf = append(w.buf, '\n')
		}
	}
	for range w.indent {
		w.buf = append(w.buf, "   "...)
	}
}

func (w *styled) value(v any) {
	switch v := v.(type) {
	case Object:
		w.object(v)
	case map[string]any:
		o := make(Object, 0, len(v))
		for k, x := range v {
			o = append(o, Member{k, x})
		}
		w.object(o)
	case Array:
		w.array(len(v), func(i int) any { return v[i] })
	case []any:
		w.array(len(v), func(i int) any { return v[i] })
	case []string:
		w.array(len(v), func(i int) any { return v[i] })
	default:
		w.buf = appendScalar(w.buf, v)
	}
}

func (w *styled) object(o Object) {
	if len(o) == 0 {
		w.buf = append(w.buf, "{}"...)
		return
	}
	if !slices.IsSortedFunc(o, cmpKey) {
		o = slices.Clone(o)
		slices.SortStableFunc(o, cmpKey)
	}
	w.writeIndent()
	w.buf = append(w.buf, '{')
	w.indent++
	for i, m := range o {
		w.writeIndent()
		w.buf = appendQuoted(w.buf, m.Key)
		w.buf = append(w.buf, " : "...)
		w.value(m.Value)
		if i < len(o)-1 {
			w.buf = append(w.buf, ',')
		}
	}
	w.indent--
	w.writeIndent()
	w.buf = append(w.buf, '}')
}

// cmpKey orders members by key, byte-wise, as a JSON reader sees the keys: bytes that are not
// UTF-8 read as U+FFFD (encoding/json and Python do so), so that keys which read alike keep
// their order and the last of them still wins for such a reader.
func cmpKey(a, b Member) int { return strings.Compare(readKey(a.Key), readKey(b.Key)) }

// readKey returns k with each byte that is not UTF-8 replaced by U+FFFD; k itself, without
// a copy, when it is valid (every key in practice).
func readKey(k string) string {
	if utf8.ValidString(k) {
		return k
	}
	var b strings.Builder
	for _, r := range k { // ranging a string yields U+FFFD for each byte that is not UTF-8
		b.WriteRune(r)
	}
	return b.String()
}

// nonEmptyContainer reports whether v is an array or object with elements.
func nonEmptyContainer(v any) bool {
	switch v := v.(type) {
	case Object:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	case Array:
		return len(v) > 0
	case []any:
		return len(v) > 0
	case []string:
		return len(v) > 0
	}
	return false
}

func (w *styled) array(n int, at func(int) any) {
	if n == 0 {
		w.buf = append(w.buf, "[]"...)
		return
	}
	multi := n*3 >= rightMargin
	for i := 0; i < n && !multi; i++ {
		multi = nonEmptyContainer(at(i))
	}
	if !multi {
		// Elements are scalars or empty containers: write the one-line form and keep it
		// if it is narrow enough. Its length is jsoncpp's lineLength.
		mark := len(w.buf)
		w.buf = append(w.buf, "[ "...)
		for i := range n {
			if i > 0 {
				w.buf = append(w.buf, ", "...)
			}
			w.value(at(i))
		}
		w.buf = append(w.buf, " ]"...)
		if len(w.buf)-mark < rightMargin {
			return
		}
		w.buf = w.buf[:mark]
	}
	w.writeIndent()
	w.buf = append(w.buf, '[')
	w.indent++
	for i := range n {
		w.writeIndent()
		w.value(at(i))
		if i < n-1 {
			w.buf = append(w.buf, ',')
		}
	}
	w.indent--
	w.writeIndent()
	w.buf = append(w.buf, ']')
}

func appendScalar(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, v)
	case string:
		return appendQuoted(dst, v)
	case Number:
		return append(dst, v...)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case int32:
		return strconv.AppendInt(dst, int64(v), 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case uint:
		return strconv.AppendUint(dst, uint64(v), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10)
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case float32:
		return appendFloat(dst, float64(v))
	case float64:
		return appendFloat(dst, v)
	}
	panic(fmt.Sprintf("codec: AppendStyled: unsupported type %T", v))
}

// appendFloat writes C's "%.16g", which Go's 'g' with precision 16 matches.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', 16, 64)
}

const hexDigits = "0123456789abcdef"

// appendQuoted writes s as a JSON string in Google's escaping.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		var esc string
		switch c {
		case '"':
			esc = `\"`
		case '\\':
			esc = `\\`
		case '\b':
			esc = `\b`
		case '\f':
			esc = `\f`
		case '\n':
			esc = `\n`
		case '\r':
			esc = `\r`
		case '\t':
			esc = `\t`
		case '<', '>':
		default:
			if c >= 0x20 {
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		if esc != "" {
			dst = append(dst, esc...)
		} else {
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ParseJSON parses one JSON value (white space around it allowed) into Object (members in
// input order), Array, Number (the token verbatim), string, bool and nil. Strings are
// unescaped; invalid UTF-8 is kept as is and unpaired surrogate escapes become U+FFFD, as
// encoding/json does. The error wraps ErrJSON. It does not keep b. Safe to call from any
// goroutine.
func ParseJSON(b []byte) (any, error) {
	s := scanner{b: b}
	if err := s.scan(); err != nil {
		return nil, err
	}
	p := parser{b: b}
	v, _ := p.value(skipSpace(b, 0))
	return v, nil
}

// parser builds the tree from input the scanner has already validated.
type parser struct {
	b []byte
}

func (p *parser) value(i int) (any, int) {
	b := p.b
	switch c := b[i]; {
	case c == '{':
		o := Object{}
		i = p.elements(i, '}', func(i int) int {
			k, i := p.str(i)
			i = skipSpace(b, skipSpace(b, i)+1) // ':'
			v, i := p.value(i)
			o = append(o, Member{k, v})
			return i
		})
		return o, i
	case c == '[':
		a := Array{}
		i = p.elements(i, ']', func(i int) int {
			v, i := p.value(i)
			a = append(a, v)
			return i
		})
		return a, i
	case c == '"':
		return p.str(i)
	case c == 't':
		return true, i + 4
	case c == 'f':
		return false, i + 5
	case c == 'n':
		return nil, i + 4
	}
	s := scanner{b: b}
	j := s.number(i)
	return Number(b[i:j]), j
}

// elements parses the members of the object or the elements of the array that opens at b[i]
// and ends with the byte end, one by one with elem, which parses the one at b[i] and returns
// the index after it. It returns the index after end.
func (p *parser) elements(i int, end byte, elem func(i int) int) int {
	b := p.b
	i = skipSpace(b, i+1)
	if b[i] == end {
		return i + 1
	}
	for {
		i = skipSpace(b, elem(i))
		if b[i] == end {
			return i + 1
		}
		i = skipSpace(b, i+1) // ','
	}
}

// str decodes the (valid) string at b[i] == '"'.
func (p *parser) str(i int) (string, int) {
	b := p.b
	i++
	j := i
	for b[j] != '"' && b[j] != '\\' {
		j++
	}
	if b[j] == '"' {
		return string(b[i:j]), j + 1
	}
	out := append([]byte(nil), b[i:j]...)
	for {
		c := b[j]
		switch {
		case c == '"':
			return string(out), j + 1
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		j++
		switch e := b[j]; e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(b[j+1:])
			j += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(b) > j+6 && b[j+1] == '\\' && b[j+2] == 'u' {
					r2 = hex4(b[j+3:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					j += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, e)
		}
		j++
	}
}

func hex4(b []byte) rune {
	var r rune
	for _, h := range b[:4] {
		r = r<<4 | rune(unhex(h))
	}
	return r
}

// AppendErrorBody appends a body in Google's legacy shape and layout, ending with "\n":
//
//	{
//	   "error_message" : msg,
//	   "html_attributions" : [],
//	   "results" : [],
//	   "status" : status
//	}
//
// with the error_message member omitted when msg == "". It is AppendStyled of that Object,
// written directly so that it does not allocate when dst has room. Safe to call from any
// goroutine.
func AppendErrorBody(dst []byte, status, msg string) []byte {
	dst = append(dst, "{\n"...)
	if msg != "" {
		dst = append(dst, `   "error_message" : `...)
		dst = appendQuoted(dst, msg)
		dst = append(dst, ",\n"...)
	}
	dst = append(dst, "   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : "...)
	dst = appendQuoted(dst, status)
	return append(dst, "\n}\n"...)
}
