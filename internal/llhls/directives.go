package llhls

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Directives are the LL-HLS delivery directives of a playlist request
// (§6.2.5): _HLS_msn, _HLS_part and _HLS_skip. Every other query parameter is
// ignored, so it never reaches a cache key or an upstream.
type Directives struct {
	// HasMSN is set when _HLS_msn was given: the request blocks.
	HasMSN bool
	MSN    uint64
	// HasPart is set when _HLS_part was given (only valid with _HLS_msn).
	HasPart bool
	Part    uint64
	// Skip asks for a Playlist Delta Update (_HLS_skip=YES or v2).
	Skip bool
}

// Errors returned by ParseDirectives. Each one is answered with 400.
var (
	ErrPartWithoutMSN = errors.New("_HLS_part given without _HLS_msn")
	ErrBadMSN         = errors.New("_HLS_msn is not a non-negative integer")
	ErrBadPart        = errors.New("_HLS_part is not a non-negative integer")
	ErrBadSkip        = errors.New("_HLS_skip must be YES or v2")
	ErrRepeated       = errors.New("delivery directive given more than once")
)

// maxDirective bounds directive values so arithmetic on them cannot overflow.
const maxDirective = 1 << 40

// ParseDirectives reads the delivery directives from a raw query string.
// It does not allocate for queries without directives.
func ParseDirectives(rawQuery string) (Directives, error) {
	var d Directives
	var seenMSN, seenPart, seenSkip bool
	q := rawQuery
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if !strings.HasPrefix(kv, "_HLS_") {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(v, "%+") {
			uv, err := url.QueryUnescape(v)
			if err != nil {
				return Directives{}, errors.New("malformed query escape")
			}
			v = uv
		}
		switch k {
		case "_HLS_msn":
			if seenMSN {
				return Directives{}, ErrRepeated
			}
			seenMSN = true
			n, err := parseDirectiveUint(v)
			if err != nil {
				return Directives{}, ErrBadMSN
			}
			d.HasMSN, d.MSN = true, n
		case "_HLS_part":
			if seenPart {
				return Directives{}, ErrRepeated
			}
			seenPart = true
			n, err := parseDirectiveUint(v)
			if err != nil {
				return Directives{}, ErrBadPart
			}
			d.HasPart, d.Part = true, n
		case "_HLS_skip":
			if seenSkip {
				return Directives{}, ErrRepeated
			}
			seenSkip = true
			switch v {
			case "YES", "v2":
				d.Skip = true
			default:
				return Directives{}, ErrBadSkip
			}
		}
	}
	if d.HasPart && !d.HasMSN {
		return Directives{}, ErrPartWithoutMSN
	}
	return d, nil
}

func parseDirectiveUint(v string) (uint64, error) {
	if v == "" || len(v) > 16 {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > maxDirective {
		return 0, strconv.ErrRange
	}
	return n, nil
}

// Query renders the directives in the normalised order clients use
// (msn, part, skip). It is the only query an edge forwards upstream and the
// only query part of a cache key.
func (d Directives) Query() string {
	var b []byte
	if d.HasMSN {
		b = append(b, "_HLS_msn="...)
		b = strconv.AppendUint(b, d.MSN, 10)
		if d.HasPart {
			b = append(b, "&_HLS_part="...)
			b = strconv.AppendUint(b, d.Part, 10)
		}
	}
	if d.Skip {
		if len(b) > 0 {
			b = append(b, '&')
		}
		b = append(b, "_HLS_skip=YES"...)
	}
	return string(b)
}
