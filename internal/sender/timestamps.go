package sender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// TimestampLayout is how the TimelinesAI Public API writes times, e.g.
// "2023-06-18 15:19:23 +0300".
const TimestampLayout = "2006-01-02 15:04:05 -0700"

// timestampLayouts are tried in order. The provider's documented layout
// first; RFC 3339 because newer pages and other clients use it; the others
// because the docs have drifted before.
var timestampLayouts = []string{
	TimestampLayout,
	time.RFC3339Nano,
	"2006-01-02 15:04:05 -07:00",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02 15:04:05", // no zone: taken as UTC
}

// ParseTimestamp reads a provider timestamp in TimestampLayout or RFC 3339.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}

// flexiTime is a timestamp field that tolerates absence and odd values: it
// is used for informative fields (a quota's period end) where a reading
// should not fail because of them. Unreadable values become the zero time.
type flexiTime time.Time

func (f *flexiTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil || s == "" {
		*f = flexiTime{}
		return nil
	}
	t, err := ParseTimestamp(s)
	if err != nil {
		*f = flexiTime{}
		return nil
	}
	*f = flexiTime(t)
	return nil
}

// flexInt is a count that may come as a JSON number (integral or not), a
// numeric string, or null (zero).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*f = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(strings.TrimSpace(s))
		if len(b) == 0 {
			*f = 0
			return nil
		}
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*f = flexInt(n)
		return nil
	}
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = flexInt(math.Round(x))
	return nil
}
