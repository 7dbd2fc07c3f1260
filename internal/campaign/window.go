package campaign

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zones work in minimal images without /usr/share/zoneinfo

	"github.com/nyaruka/phonenumbers"
)

// Window is when recipients may get messages, in each recipient's own local
// time: allowed weekdays and a daily span of hours. A recipient outside it
// waits, without failing and without holding a worker, until it opens.
type Window struct {
	Days  []time.Weekday
	Start string // "09:00"
	End   string // "18:00", after Start
	// Zone is the IANA zone of recipients whose number does not tell one
	// (countries with several zones); empty: UTC.
	Zone string

	start, end time.Duration // since midnight
	fallback   *time.Location
}

// windowJSON is how a window is written, in requests and answers alike:
// {"days":"mon,tue,wed,thu,fri","hours":"09:00-18:00","zone":"Europe/Madrid"}.
type windowJSON struct {
	Days  string `json:"days"`
	Hours string `json:"hours"`
	Zone  string `json:"zone,omitempty"`
}

// MarshalJSON writes the window the way ParseWindow reads it.
func (w Window) MarshalJSON() ([]byte, error) {
	days := make([]string, 0, len(w.Days))
	for _, d := range w.Days {
		days = append(days, strings.ToLower(d.String()[:3]))
	}
	return json.Marshal(windowJSON{Days: strings.Join(days, ","), Hours: w.Start + "-" + w.End, Zone: w.Zone})
}

// UnmarshalJSON reads a window written by MarshalJSON (or a person).
func (w *Window) UnmarshalJSON(b []byte) error {
	var v windowJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	parsed, err := ParseWindow(v.Days, v.Hours, v.Zone)
	if err != nil {
		return err
	}
	*w = *parsed
	return nil
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// WindowError is a window written wrong; Part says which of its parts:
// "days", "hours" or "zone", so a form can name its field.
type WindowError struct {
	Part string
	Msg  string
}

func (e *WindowError) Error() string { return e.Msg }

// ParseWindow reads a window as people write it: days "mon-fri" or
// "mon,wed,fri" (empty: every day), hours "09:00-18:00", zone an IANA name
// ("Europe/Madrid") for numbers without a single zone of their own.
func ParseWindow(days, hours, zone string) (*Window, error) {
	w := &Window{Zone: strings.TrimSpace(zone)}
	days = strings.ToLower(strings.TrimSpace(days))
	if days == "" {
		days = "sun-sat"
	}
	for _, part := range strings.Split(days, ",") {
		part = strings.TrimSpace(part)
		from, to, isRange := strings.Cut(part, "-")
		a, okA := weekdays[strings.TrimSpace(from)]
		b, okB := a, okA
		if isRange {
			b, okB = weekdays[strings.TrimSpace(to)]
		}
		if !okA || !okB {
			return nil, &WindowError{Part: "days", Msg: fmt.Sprintf("window days %q: use mon, tue, wed, thu, fri, sat, sun, as a list (mon,wed) or a range (mon-fri)", days)}
		}
		for d := a; ; d = (d + 1) % 7 {
			if !containsDay(w.Days, d) {
				w.Days = append(w.Days, d)
			}
			if d == b {
				break
			}
		}
	}
	from, to, ok := strings.Cut(strings.TrimSpace(hours), "-")
	if !ok {
		return nil, &WindowError{Part: "hours", Msg: fmt.Sprintf("window hours %q: write them like 09:00-18:00", hours)}
	}
	var err error
	if w.start, err = clock(from); err != nil {
		return nil, err
	}
	if w.end, err = clock(to); err != nil {
		return nil, err
	}
	if w.end <= w.start {
		return nil, &WindowError{Part: "hours", Msg: fmt.Sprintf("window hours %q: the end must come after the start on the same day", hours)}
	}
	w.Start, w.End = strings.TrimSpace(from), strings.TrimSpace(to)
	if w.Zone != "" {
		if w.fallback, err = time.LoadLocation(w.Zone); err != nil {
			return nil, &WindowError{Part: "zone", Msg: fmt.Sprintf("window zone %q is not an IANA time zone like Europe/Madrid", w.Zone)}
		}
	}
	return w, nil
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, &WindowError{Part: "hours", Msg: fmt.Sprintf("window time %q: write it like 09:00", s)}
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

func containsDay(days []time.Weekday, d time.Weekday) bool {
	for _, x := range days {
		if x == d {
			return true
		}
	}
	return false
}

// NextOpen is t when the window is open at t in loc, else when it next
// opens.
func (w *Window) NextOpen(t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	for i := 0; i < 8; i++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+i, 0, 0, 0, 0, loc)
		if !containsDay(w.Days, day.Weekday()) {
			continue
		}
		// Built from the wall clock, so a DST change that day is right.
		open := time.Date(day.Year(), day.Month(), day.Day(), int(w.start/time.Hour), int(w.start%time.Hour/time.Minute), 0, 0, loc)
		closes := time.Date(day.Year(), day.Month(), day.Day(), int(w.end/time.Hour), int(w.end%time.Hour/time.Minute), 0, 0, loc)
		switch {
		case t.Before(open):
			return open
		case t.Before(closes):
			return t
		}
	}
	return t // no allowed day at all cannot happen: ParseWindow needs one
}

// Location is the zone a recipient lives in: the one its number belongs to
// when the number tells a single one, else the window's zone, else UTC.
func (w *Window) Location(e164 string) *time.Location {
	if loc := phoneZone(e164); loc != nil {
		return loc
	}
	if w.fallback != nil {
		return w.fallback
	}
	return time.UTC
}

var zones sync.Map // IANA name → *time.Location

func phoneZone(e164 string) *time.Location {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return nil
	}
	names, err := phonenumbers.GetTimezonesForNumber(num)
	if err != nil || len(names) == 0 || names[0] == "Etc/Unknown" {
		return nil
	}
	first := loadZone(names[0])
	if first == nil {
		return nil
	}
	// Several zones that keep the same clock (London, Guernsey, Isle of Man)
	// are one zone to a send window; zones that differ are not.
	for _, name := range names[1:] {
		if loc := loadZone(name); loc == nil || !sameClock(first, loc) {
			return nil
		}
	}
	return first
}

func loadZone(name string) *time.Location {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	zones.Store(name, loc)
	return loc
}

// sameClock compares two zones in winter and in summer of both hemispheres.
func sameClock(a, b *time.Location) bool {
	for _, t := range []time.Time{time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC)} {
		_, oa := t.In(a).Zone()
		_, ob := t.In(b).Zone()
		if oa != ob {
			return false
		}
	}
	return true
}
