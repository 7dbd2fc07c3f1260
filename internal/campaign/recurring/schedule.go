package recurring

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/wacampaign/wacampaign/internal/campaign"
)

// cronParser reads standard 5-field specs, an optional leading seconds field
// (second-level schedules), and descriptors such as @daily.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule is a parsed cron spec in its zone.
type Schedule struct {
	spec      *cron.SpecSchedule
	zone      *time.Location
	everyHour bool // the hour field is "*": it fires in a repeated hour again
	text      string
}

// ParseSchedule validates a spec and zone as a user wrote them; mistakes
// are *campaign.InputError naming cron or cron_zone.
func ParseSchedule(spec, zone string) (*Schedule, error) {
	spec = strings.Join(strings.Fields(spec), " ")
	zone = strings.TrimSpace(zone)
	if spec == "" {
		return nil, campaign.FieldError("cron", `a cron spec is required, like "0 9 * * mon-fri" (minute hour day-of-month month day-of-week; a leading seconds field is optional)`)
	}
	if first, rest, _ := strings.Cut(spec, " "); strings.HasPrefix(first, "CRON_TZ=") || strings.HasPrefix(first, "TZ=") {
		_, named, _ := strings.Cut(first, "=")
		if zone != "" && zone != named {
			return nil, campaign.FieldError("cron_zone", fmt.Sprintf("the cron spec names the zone %q and cron_zone is %q; give the zone once", named, zone))
		}
		zone, spec = named, rest
	}
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return nil, campaign.FieldError("cron_zone", fmt.Sprintf("cron_zone %q is not an IANA time zone, like Europe/Madrid or America/New_York", zone))
	}
	if strings.HasPrefix(spec, "@every") {
		return nil, campaign.FieldError("cron", "@every is not supported: runs happen at clock times; write a cron spec such as \"*/15 * * * *\"")
	}
	parsed, err := cronParser.Parse(spec)
	if err != nil {
		return nil, campaign.FieldError("cron", fmt.Sprintf("cron %q: %v; write minute hour day-of-month month day-of-week, with an optional leading seconds field", spec, err))
	}
	ss, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, campaign.FieldError("cron", fmt.Sprintf("cron %q is not a clock-time spec", spec))
	}
	ss.Location = loc
	const allHours = 1<<24 - 1
	s := &Schedule{spec: ss, zone: loc, everyHour: ss.Hour&allHours == allHours, text: spec}
	if s.Next(time.Now()).IsZero() {
		return nil, campaign.FieldError("cron", fmt.Sprintf("cron %q never fires (a date that does not exist, like 30 February?)", spec))
	}
	return s, nil
}

// Spec is the spec without a zone prefix; Zone is the IANA zone.
func (s *Schedule) Spec() string { return s.text }

// Zone is the zone the spec's clock times are in.
func (s *Schedule) Zone() *time.Location { return s.zone }

// Next is the first tick after t, or the zero time if there is none within
// five years. A spec with fixed hours fires once per wall-clock time: in the
// hour a DST change repeats, cron would fire "30 2 * * *" twice, and a daily
// campaign would message its list twice that night; as in Vixie cron, only
// specs that fire every hour fire in the repeated hour again. (A wall time
// that a DST change skips, 02:30 on the night clocks jump from 02:00 to
// 03:00, has no tick: cron's behaviour, kept.)
func (s *Schedule) Next(t time.Time) time.Time {
	for {
		n := s.spec.Next(t)
		if n.IsZero() || !s.repeatsWallClock(n) {
			return n
		}
		t = n
	}
}

// repeatsWallClock says whether tick t is the second occurrence of its wall
// clock time (the hour after a fall-back), for a spec with fixed hours.
func (s *Schedule) repeatsWallClock(t time.Time) bool {
	if s.everyHour {
		return false
	}
	local := t.In(s.zone)
	_, now := local.Zone()
	_, before := t.Add(-12 * time.Hour).In(s.zone).Zone()
	if before <= now {
		return false
	}
	earlier := t.Add(-time.Duration(before-now) * time.Second).In(s.zone)
	const wall = "2006-01-02T15:04:05"
	return earlier.Format(wall) == local.Format(wall)
}

// Latest is the latest tick in (after, now], or the zero time when there is
// none: what a scheduler starts, so that a long outage starts one run, not a
// backlog. It searches back from now in doubling spans, so a per-second spec
// after a week's outage costs a handful of Next calls, not 600,000.
func (s *Schedule) Latest(after, now time.Time) time.Time {
	if !now.After(after) {
		return time.Time{}
	}
	for span := time.Second; ; span *= 2 {
		from := now.Add(-span)
		if !from.After(after) {
			from = after
		}
		if t := s.Next(from); !t.IsZero() && !t.After(now) {
			for {
				n := s.Next(t)
				if n.IsZero() || n.After(now) {
					return t
				}
				t = n
			}
		}
		if from.Equal(after) {
			return time.Time{}
		}
	}
}
