package app

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is API_RATE_LIMIT: requests per second and the burst allowed
// above it. The zero value is no limit.
type RateLimit struct {
	PerSecond rate.Limit
	Burst     int
}

// Off reports whether there is no limit.
func (l RateLimit) Off() bool { return l.PerSecond == 0 }

// ParseRateLimit reads "<n>/s", "/m" or "/h", optionally followed by
// "burst <m>" (default: twice n per second, at least 1), or "off".
func ParseRateLimit(v string) (RateLimit, error) {
	v = strings.TrimSpace(v)
	if v == "off" {
		return RateLimit{}, nil
	}
	fields := strings.Fields(v)
	if len(fields) != 1 && (len(fields) != 3 || fields[1] != "burst") {
		return RateLimit{}, fmt.Errorf("%q is not like 20/s or 20/s burst 40 (or off)", v)
	}
	count, unit, ok := strings.Cut(fields[0], "/")
	n, err := strconv.ParseFloat(count, 64)
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if !ok || err != nil || n <= 0 || per == 0 {
		return RateLimit{}, fmt.Errorf("%q is not a positive number per s, m or h (like 20/s)", fields[0])
	}
	l := RateLimit{PerSecond: rate.Limit(n / per.Seconds())}
	l.Burst = max(1, int(2*float64(l.PerSecond)))
	if len(fields) == 3 {
		if l.Burst, err = strconv.Atoi(fields[2]); err != nil || l.Burst < 1 {
			return RateLimit{}, fmt.Errorf("burst %q is not a whole number of at least 1", fields[2])
		}
	}
	return l, nil
}
