package h1

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// requestError is a malformed or refused request: answered with status,
// then the connection closes.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{http.StatusBadRequest, msg} }

// parse fills c.req from head (a complete request head, blank line
// included) and reports whether the client allows keep-alive.
func (c *conn) parse(head []byte) (keep bool, err error) {
	// The target and every header line are strings from the server's
	// intern table (nearly always there already); every field below is a
	// substring of one of them.
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	methodB, line, ok1 := bytes.Cut(line, []byte(" "))
	targetB, protoB, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || len(methodB) == 0 || len(targetB) == 0 {
		return false, badRequest("malformed request line")
	}
	method := internMethod(methodB)
	if !isToken(method) {
		return false, badRequest("invalid method")
	}
	major, minor, ok := parseProto(protoB)
	if !ok {
		return false, badRequest("malformed HTTP version")
	}
	if major != 1 {
		return false, &requestError{http.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served here"}
	}
	target := c.srv.intern.get(targetB)

	c.req = c.tmpl
	req := &c.req
	req.Method = method
	req.Proto = "HTTP/1.1"
	if minor == 0 {
		req.Proto = "HTTP/1.0"
	}
	req.ProtoMajor, req.ProtoMinor = 1, minor
	req.RequestURI = target
	req.RemoteAddr = c.remote
	keep = minor == 1

	clear(c.hdr)
	c.vals = c.vals[:0]
	req.Header = c.hdr
	var (
		hosts        int
		contentLen   = int64(-1)
		chunked      bool
		expect100    bool
		absoluteHost string
	)
	if err := c.parseTarget(target, &absoluteHost); err != nil {
		return false, err
	}

	for {
		var lineB []byte
		lineB, rest, _ = bytes.Cut(rest, []byte("\n"))
		lineB = bytes.TrimSuffix(lineB, []byte("\r"))
		if len(lineB) == 0 {
			break
		}
		line := c.srv.intern.get(lineB)
		if line[0] == ' ' || line[0] == '\t' {
			return false, badRequest("obsolete line folding in header")
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return false, badRequest("malformed header line")
		}
		value = trimOWS(value)
		if !validValue(value) {
			return false, badRequest("invalid header value")
		}
		key := http.CanonicalHeaderKey(name)
		switch key {
		case "Host":
			hosts++
			req.Host = value
		case "Content-Length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || value[0] == '+' {
				return false, badRequest("invalid Content-Length")
			}
			if contentLen >= 0 && n != contentLen {
				return false, badRequest("conflicting Content-Length headers")
			}
			contentLen = n
		case "Transfer-Encoding":
			if chunked || !strings.EqualFold(value, "chunked") {
				return false, &requestError{http.StatusNotImplemented, "unsupported Transfer-Encoding " + value}
			}
			chunked = true
		case "Connection":
			for tok := range strings.SplitSeq(value, ",") {
				tok = trimOWS(tok)
				switch {
				case strings.EqualFold(tok, "close"):
					keep = false
				case strings.EqualFold(tok, "keep-alive") && minor == 0:
					keep = true
				}
			}
		case "Expect":
			if !strings.EqualFold(value, "100-continue") {
				return false, &requestError{http.StatusExpectationFailed, "unsupported Expect " + value}
			}
			expect100 = true
		}
		if vs, dup := c.hdr[key]; dup {
			c.hdr[key] = append(vs, value)
			continue
		}
		c.vals = append(c.vals, value)
		n := len(c.vals)
		c.hdr[key] = c.vals[n-1 : n : n]
	}
	// A Connection: close that came before a keep-alive must still win.
	if hasToken(c.hdr["Connection"], "close") {
		keep = false
	}

	switch {
	case minor == 1 && hosts != 1:
		return false, badRequest("HTTP/1.1 requires exactly one Host header")
	case hosts > 1:
		return false, badRequest("more than one Host header")
	case !validHost(req.Host):
		return false, badRequest("invalid Host header")
	}
	if absoluteHost != "" {
		req.Host = absoluteHost
	}

	if chunked && contentLen >= 0 {
		// Request smuggling's favourite ambiguity: refuse it.
		return false, badRequest("both Transfer-Encoding and Content-Length")
	}
	if chunked && minor == 0 {
		return false, badRequest("Transfer-Encoding in an HTTP/1.0 request")
	}
	if contentLen > c.srv.MaxBodyBytes {
		return false, &requestError{http.StatusRequestEntityTooLarge, "request body too large"}
	}
	switch {
	case chunked:
		req.TransferEncoding = transferChunked
		req.ContentLength = -1
		c.body.reset(-1, expect100 && minor == 1)
		req.Body = &c.body
	case contentLen > 0:
		req.ContentLength = contentLen
		c.body.reset(contentLen, expect100 && minor == 1)
		req.Body = &c.body
	default:
		req.ContentLength = 0
		c.body.reset(0, false)
		req.Body = http.NoBody
	}
	return keep, nil
}

var transferChunked = []string{"chunked"}

// parseTarget sets c.url from a request target in origin form, absolute form
// or "*" (OPTIONS only). Plain paths are sliced without url.Parse.
func (c *conn) parseTarget(target string, absoluteHost *string) error {
	c.url = url.URL{}
	c.req.URL = &c.url
	switch {
	case target == "*":
		if c.req.Method != http.MethodOptions {
			return badRequest("request target * is only for OPTIONS")
		}
		c.url.Path = "*"
		return nil
	case target[0] == '/':
		if plainTarget(target) {
			c.url.Path, c.url.RawQuery, c.url.ForceQuery = cutQuery(target)
			return nil
		}
	case hasSchemePrefix(target):
	default:
		return badRequest("malformed request target")
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return badRequest("malformed request target")
	}
	c.url = *u
	if u.Host != "" {
		*absoluteHost = u.Host
		c.url.Scheme, c.url.Host, c.url.User = "", "", nil
	}
	return nil
}

func cutQuery(target string) (path, query string, force bool) {
	path, query, found := strings.Cut(target, "?")
	return path, query, found && query == ""
}

// plainTarget reports whether target needs no unescaping: visible ASCII
// without '%' or '#'.
func plainTarget(target string) bool {
	for i := 0; i < len(target); i++ {
		b := target[i]
		if b <= ' ' || b >= 0x7f || b == '%' || b == '#' {
			return false
		}
	}
	return true
}

func hasSchemePrefix(s string) bool {
	return len(s) > 8 && (strings.EqualFold(s[:7], "http://") || strings.EqualFold(s[:8], "https://"))
}

func parseProto(p []byte) (major, minor int, ok bool) {
	switch {
	case string(p) == "HTTP/1.1":
		return 1, 1, true
	case string(p) == "HTTP/1.0":
		return 1, 0, true
	}
	if len(p) != 8 || !bytes.HasPrefix(p, []byte("HTTP/")) || p[6] != '.' ||
		p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9' {
		return 0, 0, false
	}
	return int(p[5] - '0'), int(p[7] - '0'), true
}

// internMethod returns the common methods as constants, without allocating.
func internMethod(m []byte) string {
	switch {
	case string(m) == http.MethodGet:
		return http.MethodGet
	case string(m) == http.MethodHead:
		return http.MethodHead
	case string(m) == http.MethodOptions:
		return http.MethodOptions
	case string(m) == http.MethodPost:
		return http.MethodPost
	}
	return string(m)
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(trimOWS(tok), token) {
				return true
			}
		}
	}
	return false
}

// trimOWS trims the optional whitespace (spaces and tabs) around a field
// value; strings.Trim builds its cut set anew on every call.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool { return s != "" && allIn(&tokenChars, s) }

// validValue reports whether v is a valid field value: no control
// characters other than horizontal tab.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts what a Host header may hold (RFC 3986 reg-name, IP
// literal, port), as net/http's check does.
func validHost(h string) bool { return allIn(&hostChars, h) }

var (
	tokenChars = alnumAnd("!#$%&'*+-.^_`|~")
	hostChars  = alnumAnd("-._~!$&'()*+,;=:[]%")
)

// alnumAnd is the set of ASCII letters and digits and the bytes of extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

// allIn reports whether every byte of s is in set.
func allIn(set *[256]bool, s string) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
