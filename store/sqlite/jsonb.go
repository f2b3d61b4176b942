package sqlite

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stint-dev/stint/store"
)

// normalizeJSON returns data as PostgreSQL's jsonb gives it back, so that
// both engines store and return the same text: no insignificant whitespace
// but ", " and ": " between members, object keys sorted shorter first then
// bytewise, the last of duplicate keys kept, strings with only the escapes
// jsonb writes, and numbers as PostgreSQL's numeric prints them (no
// exponent, trailing zeros of the fraction kept, no negative zero).
//
// What jsonb refuses is refused here too, wrapped in store.ErrUnstorable:
// text that is not JSON or not UTF-8, a \u0000 escape, a lone surrogate,
// and a number beyond numeric's range.
func normalizeJSON(data []byte) ([]byte, error) {
	switch string(data) {
	case "{}", "[]", "null", "true", "false":
		return data, nil
	}
	p := jsonParser{data: data}
	p.space()
	v, err := p.value(0)
	if err == nil {
		p.space()
		if p.pos < len(p.data) {
			err = p.fail("unexpected data after the value")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %v", store.ErrUnstorable, err)
	}
	var b strings.Builder
	b.Grow(len(data) + len(data)/8)
	v.write(&b)
	return []byte(b.String()), nil
}

// maxJSONDepth bounds the nesting of arrays and objects, so that a hostile
// value cannot exhaust the stack.
const maxJSONDepth = 10_000

// numeric's limits: digits before the decimal point (32767 base-10000
// digits of weight) and after it (the display scale).
const (
	maxNumericIntDigits  = 131_072
	maxNumericFracDigits = 16_383
)

// jsonValue is a parsed JSON value. Scalars keep their output text.
type jsonValue struct {
	kind   byte // 'o' object, 'a' array, 's' string, 'n' number or literal
	text   string
	keys   []string
	values []*jsonValue
}

func (v *jsonValue) write(b *strings.Builder) {
	switch v.kind {
	case 's':
		writeJSONString(b, v.text)
	case 'n':
		b.WriteString(v.text)
	case 'a':
		b.WriteByte('[')
		for i, e := range v.values {
			if i > 0 {
				b.WriteString(", ")
			}
			e.write(b)
		}
		b.WriteByte(']')
	case 'o':
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			v.values[i].write(b)
		}
		b.WriteByte('}')
	}
}

// writeJSONString writes s quoted with the escapes of PostgreSQL's
// escape_json: the two-letter ones, \u00XX (lower-case hex) for the other
// control characters, everything else as it is.
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

type jsonParser struct {
	data []byte
	pos  int
}

func (p *jsonParser) fail(msg string) error {
	return fmt.Errorf("%s at byte %d", msg, p.pos)
}

// space skips the whitespace JSON allows.
func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*jsonValue, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: 's', text: s}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := p.number()
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: 'n', text: n}, nil
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(string(p.data[p.pos:min(len(p.data), p.pos+5)]), lit) {
				p.pos += len(lit)
				return &jsonValue{kind: 'n', text: lit}, nil
			}
		}
		return nil, p.fail("unexpected character")
	}
}

func (p *jsonParser) object(depth int) (*jsonValue, error) {
	if depth > maxJSONDepth {
		return nil, p.fail("nested too deeply")
	}
	p.pos++ // {
	v := &jsonValue{kind: 'o'}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail("expected a string key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("expected ':'")
		}
		p.pos++
		p.space()
		e, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.keys, v.values = append(v.keys, k), append(v.values, e)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end in an object")
		}
		if p.data[p.pos] == '}' {
			p.pos++
			break
		}
		if p.data[p.pos] != ',' {
			return nil, p.fail("expected ',' or '}'")
		}
		p.pos++
	}
	v.sortKeys()
	return v, nil
}

// sortKeys orders the members as jsonb does (shorter keys first, then
// bytewise) and keeps the last of members with equal keys.
func (v *jsonValue) sortKeys() {
	n := len(v.keys)
	if n < 2 {
		return
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ka, kb := v.keys[a], v.keys[b]
		if len(ka) != len(kb) {
			return len(ka) - len(kb)
		}
		return strings.Compare(ka, kb)
	})
	keys := make([]string, 0, n)
	values := make([]*jsonValue, 0, n)
	for i, idx := range order {
		// Within a run of equal keys, stable order puts the last one last.
		if i+1 < n && v.keys[order[i+1]] == v.keys[idx] {
			continue
		}
		keys, values = append(keys, v.keys[idx]), append(values, v.values[idx])
	}
	v.keys, v.values = keys, values
}

func (p *jsonParser) array(depth int) (*jsonValue, error) {
	if depth > maxJSONDepth {
		return nil, p.fail("nested too deeply")
	}
	p.pos++ // [
	v := &jsonValue{kind: 'a'}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		e, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.values = append(v.values, e)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end in an array")
		}
		if p.data[p.pos] == ']' {
			p.pos++
			return v, nil
		}
		if p.data[p.pos] != ',' {
			return nil, p.fail("expected ',' or ']'")
		}
		p.pos++
	}
}

// str reads a string literal and returns its value.
func (p *jsonParser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// The common case: no escapes.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := p.data[start:p.pos]
			if !utf8.Valid(s) {
				return "", p.fail("invalid UTF-8 in a string")
			}
			p.pos++
			return string(s), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.pos++
	}
	var b []byte
	b = append(b, p.data[start:p.pos]...)
	for {
		if p.pos >= len(p.data) {
			return "", p.fail("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(b) {
				return "", p.fail("invalid UTF-8 in a string")
			}
			return string(b), nil
		case c < 0x20:
			return "", p.fail("unescaped control character in a string")
		case c != '\\':
			b = append(b, c)
			p.pos++
			continue
		}
		p.pos++ // backslash
		if p.pos >= len(p.data) {
			return "", p.fail("unterminated escape")
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			switch {
			case r == 0:
				return "", p.fail(`unsupported escape \u0000`)
			case utf16.IsSurrogate(r) && r < 0xdc00:
				// A high surrogate must be followed by a low one.
				if p.pos+1 >= len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
					return "", p.fail("high surrogate without a low one")
				}
				p.pos += 2
				lo, err := p.hex4()
				if err != nil {
					return "", err
				}
				if lo < 0xdc00 || lo > 0xdfff {
					return "", p.fail("high surrogate without a low one")
				}
				r = utf16.DecodeRune(r, lo)
			case utf16.IsSurrogate(r):
				return "", p.fail("low surrogate without a high one")
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", p.fail("invalid escape")
		}
	}
}

func (p *jsonParser) hex4() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.fail(`truncated \u escape`)
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, p.fail(`invalid \u escape`)
		}
	}
	p.pos += 4
	return r, nil
}

// number reads a number literal and returns it as PostgreSQL's numeric
// prints it: plain digits, with as many fraction digits as the literal
// had less its exponent.
func (p *jsonParser) number() (string, error) {
	d := p.data
	i := p.pos
	neg := d[i] == '-'
	if neg {
		i++
	}
	digitsFrom := func(j int) int {
		for j < len(d) && d[j] >= '0' && d[j] <= '9' {
			j++
		}
		return j
	}
	intStart := i
	if i >= len(d) || d[i] < '0' || d[i] > '9' {
		p.pos = i
		return "", p.fail("invalid number")
	}
	if d[i] == '0' {
		i++
	} else {
		i = digitsFrom(i)
	}
	intPart := d[intStart:i]
	var frac []byte
	if i < len(d) && d[i] == '.' {
		j := digitsFrom(i + 1)
		if j == i+1 {
			p.pos = j
			return "", p.fail("invalid number")
		}
		frac = d[i+1 : j]
		i = j
	}
	exp := 0
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		expNeg := false
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			expNeg = d[i] == '-'
			i++
		}
		j := digitsFrom(i)
		if j == i {
			p.pos = j
			return "", p.fail("invalid number")
		}
		for _, c := range d[i:j] {
			exp = exp*10 + int(c-'0')
			if exp > 1<<30 {
				p.pos = j
				return "", p.fail("number out of range")
			}
		}
		if expNeg {
			exp = -exp
		}
		i = j
	}
	p.pos = i

	digits := string(intPart) + string(frac)
	point := len(intPart) + exp // position of the decimal point in digits
	scale := max(len(frac)-exp, 0)
	var ip string
	switch {
	case point <= 0:
	case point >= len(digits):
		ip = digits + strings.Repeat("0", point-len(digits))
	default:
		ip = digits[:point]
	}
	ip = strings.TrimLeft(ip, "0")
	if ip == "" {
		ip = "0"
	}
	if len(ip) > maxNumericIntDigits || scale > maxNumericFracDigits {
		return "", p.fail("number out of range")
	}
	var b strings.Builder
	if neg && strings.Trim(digits, "0") != "" {
		b.WriteByte('-')
	}
	b.WriteString(ip)
	if scale > 0 {
		b.WriteByte('.')
		if point < 0 {
			b.WriteString(strings.Repeat("0", -point))
			b.WriteString(digits)
		} else {
			b.WriteString(digits[point:])
		}
	}
	return b.String(), nil
}
