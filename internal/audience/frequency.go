package audience

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FrequencyCap limits the marketing messages one address receives across
// every campaign: at most Messages in any Period. The zero value is off.
type FrequencyCap struct {
	Messages int
	Period   time.Duration
}

// On reports whether the cap limits anything.
func (c FrequencyCap) On() bool { return c.Messages > 0 && c.Period > 0 }

// String is the cap as FREQUENCY_CAP writes it.
func (c FrequencyCap) String() string {
	if !c.On() {
		return "off"
	}
	if c.Period%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d/%dd", c.Messages, c.Period/(24*time.Hour))
	}
	return fmt.Sprintf("%d/%s", c.Messages, c.Period)
}

// ParseFrequencyCap reads FREQUENCY_CAP: "<messages>/<period>", the period
// a Go duration or a number of days ("1/24h", "3/7d"); "" or "off" is off.
func ParseFrequencyCap(v string) (FrequencyCap, error) {
	v = strings.TrimSpace(v)
	if v == "" || strings.EqualFold(v, "off") {
		return FrequencyCap{}, nil
	}
	count, period, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if !ok || err != nil || n < 1 {
		return FrequencyCap{}, fmt.Errorf("%q is not <messages>/<period> with at least 1 message, like 1/24h or 3/7d (or off)", v)
	}
	d, err := parsePeriod(strings.TrimSpace(period))
	if err != nil {
		return FrequencyCap{}, fmt.Errorf("%q: the period %v", v, err)
	}
	return FrequencyCap{Messages: n, Period: d}, nil
}

func parsePeriod(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q is not a duration (like 24h) or a number of days (like 7d)", v)
		}
	}
	if d < time.Minute || d > 366*24*time.Hour {
		return 0, fmt.Errorf("%q must be between 1m and 366d", v)
	}
	return d, nil
}
