//go:build linux

package harness

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/nyaruka/phonenumbers"
)

// The generated contacts file: a phone and four text columns of the sizes a
// real customer list has. Phones are US numbers in four spellings people
// use, so normalising them to E.164 is real work; a few rows are planted
// duplicates (the same number spelled differently) and a few are invalid, so
// de-duplication and rejection run too.
var (
	csvHeader  = []string{"phone", "first_name", "last_name", "city", "plan"}
	firstNames = []string{"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
		"William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Christopher", "Karen",
		"José", "María", "Zoë", "Chloé", "Nguyen", "Aaliyah", "Mohammed", "Priya", "Wei", "Olga"}
	lastNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
		"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
		"Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez", "Clark", "Ramirez", "Lewis", "O'Connor"}
	cities = []string{"New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia", "San Antonio", "San Diego",
		"Dallas", "San Jose", "Austin", "Jacksonville", "Fort Worth", "Columbus", "Charlotte", "San Francisco",
		"Indianapolis", "Seattle", "Denver", "Washington, D.C.", "Boston", "El Paso", "Nashville", "Detroit", "Portland"}
	plans = []string{"Basic", "Pro", "Business", "Enterprise", "Free trial"}

	// Area codes of big US cities; exchanges 234-999 under them give the
	// number ranges (10,000 lines each) the generator draws from.
	areaCodes = []int{212, 213, 312, 415, 305, 404, 617, 206, 303, 512, 602, 702, 713, 718, 801, 808, 201, 503, 612, 919}
)

// The planted bad rows: one duplicate every dupEvery rows, one invalid phone
// every invalidEvery rows.
const (
	dupEvery     = 10_000
	invalidEvery = 100_000
)

// PhonePlan numbers distinct valid US phones: number i is line i/len(prefixes)
// of prefix i%len(prefixes), so consecutive rows rotate over area codes as a
// real list does.
type PhonePlan struct {
	prefixes []int // area code * 1000 + exchange, each checked valid
}

// NewPhonePlan finds enough prefixes for n distinct numbers, checking with
// libphonenumber (what the product validates with) that the first, a middle
// and the last line of each are valid.
func NewPhonePlan(n int) (*PhonePlan, error) {
	// At least one range per area code, so that rows rotate over all of
	// them whatever the size.
	need := max((n+9999)/10000, len(areaCodes))
	p := &PhonePlan{}
	for exchange := 234; exchange <= 999 && len(p.prefixes) < need; exchange++ {
		if exchange%100 == 11 || exchange == 555 {
			continue // N11 codes and the 555 directory exchange are not subscriber numbers
		}
		for _, area := range areaCodes {
			if len(p.prefixes) == need {
				break
			}
			ok := true
			for _, line := range []int{0, 5000, 9999} {
				num, err := phonenumbers.Parse(fmt.Sprintf("+1%03d%03d%04d", area, exchange, line), "US")
				if err != nil || !phonenumbers.IsValidNumber(num) {
					ok = false
					break
				}
			}
			if ok {
				p.prefixes = append(p.prefixes, area*1000+exchange)
			}
		}
	}
	if len(p.prefixes) < need {
		return nil, fmt.Errorf("only %d valid number ranges for %d rows", len(p.prefixes), n)
	}
	return p, nil
}

// Ranges is how many number ranges (area code and exchange) the plan draws
// from.
func (p *PhonePlan) Ranges() int { return len(p.prefixes) }

// Phone spells number i in one of four ways, chosen by style.
func (p *PhonePlan) Phone(i, style int) string {
	prefix := p.prefixes[i%len(p.prefixes)]
	area, exchange, line := prefix/1000, prefix%1000, i/len(p.prefixes)
	switch style % 4 {
	case 0:
		return fmt.Sprintf("+1 %03d-%03d-%04d", area, exchange, line)
	case 1:
		return fmt.Sprintf("(%03d) %03d-%04d", area, exchange, line)
	case 2:
		return fmt.Sprintf("%03d.%03d.%04d", area, exchange, line)
	default:
		return fmt.Sprintf("+1%03d%03d%04d", area, exchange, line)
	}
}

// ContactsStats describes a generated file.
type ContactsStats struct {
	Rows        int     // data rows (the header not counted)
	Bytes       int64   // the whole file
	AvgRowBytes float64 // a data row, with its line break
	Duplicates  int     // planted: rows repeating an earlier row's number
	Invalid     int     // planted: rows whose phone is not a number
}

// ExpectedRecipients is what a correct import keeps.
func (s ContactsStats) ExpectedRecipients() int { return s.Rows - s.Duplicates - s.Invalid }

// WriteContacts writes the header and n rows of contacts to w.
func WriteContacts(w io.Writer, n int, plan *PhonePlan) (ContactsStats, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	c := csv.NewWriter(bw)
	st := ContactsStats{Rows: n}
	if err := c.Write(csvHeader); err != nil {
		return st, err
	}
	c.Flush()
	headerBytes := int64(bw.Buffered())
	rec := make([]string, len(csvHeader))
	for i := 0; i < n; i++ {
		switch {
		case i%invalidEvery == invalidEvery-7:
			rec[0] = "555-12" + strconv.Itoa(i%10) // too short for any region
			st.Invalid++
		case i%dupEvery == dupEvery-1:
			rec[0] = plan.Phone(i-1234, i+1) // an earlier row's number, spelled another way
			st.Duplicates++
		default:
			rec[0] = plan.Phone(i, i)
		}
		rec[1] = firstNames[(i*7)%len(firstNames)]
		rec[2] = lastNames[(i*13+i/len(lastNames))%len(lastNames)]
		rec[3] = cities[(i*3+i/97)%len(cities)]
		rec[4] = plans[(i/3)%len(plans)]
		if err := c.Write(rec); err != nil {
			return st, err
		}
	}
	c.Flush()
	if err := c.Error(); err != nil {
		return st, err
	}
	if err := bw.Flush(); err != nil {
		return st, err
	}
	st.Bytes = cw.n
	if n > 0 {
		st.AvgRowBytes = float64(cw.n-headerBytes) / float64(n)
	}
	return st, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
