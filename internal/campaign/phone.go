package campaign

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// scientificNotation matches what a spreadsheet makes of a long number in a
// column not formatted as text: 1.4155550100E+10.
var scientificNotation = regexp.MustCompile(`^\d(\.\d+)?[eE]\+?\d+$`)

// NormalizePhone returns raw as an E.164 number (+14155550100), reading
// numbers written without a country code as numbers of region (ISO 3166
// alpha-2, e.g. "US"). The error says, for a person, what is wrong.
func NormalizePhone(raw, region string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("phone is empty")
	}
	e164, err := normalize(s, region)
	if err == nil && len(e164) > maxE164Digits+1 {
		// The numbering plan's patterns let a few such numbers through
		// (fuzzing found German ones); no network routes them.
		return "", fmt.Errorf("phone %q is longer than the %d digits a phone number has at most, with its country code", clip(s), maxE164Digits)
	}
	return e164, err
}

// maxE164Digits is the most digits an E.164 number has, country code
// included.
const maxE164Digits = 15

// normalize is NormalizePhone of a trimmed, non-empty s.
func normalize(s, region string) (string, error) {
	if e164, ok := fastNormalize(s, region); ok {
		return e164, nil
	}
	if scientificNotation.MatchString(s) {
		return "", fmt.Errorf("phone %q was turned into scientific notation by a spreadsheet; format the column as text and export again", clip(s))
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		return "", fmt.Errorf("phone %q is not a phone number", clip(s))
	}
	if !phonenumbers.IsValidNumber(num) {
		if !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "00") {
			return "", fmt.Errorf("phone %q is not a valid number for region %s; write it with + and the country code", clip(s), region)
		}
		return "", fmt.Errorf("phone %q is not a valid phone number", clip(s))
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// fastNormalize handles the numbers most lists are made of, a few times
// faster than the general parse (whose regular expressions, for extensions
// and for finding a number's region among all those sharing its country
// code, cost tens of microseconds a number: most of an import's CPU).
//
// It takes a number of the default region written with only digits and
// spaces, dashes, dots or parentheses, either as +<country code><national
// number> or as the national number alone, not starting with 0 (so no trunk
// prefix and no international prefix to interpret), and accepts it only if
// it is a valid number of that region. Anything else — another country, a
// leading 0, letters, an extension, an invalid number — answers false and
// takes the general path, which reads such a number the same way: it keeps a
// national number that is valid as written.
func fastNormalize(s, region string) (string, bool) {
	cc := regionCode(region)
	if cc == "" {
		return "", false
	}
	var digits [20]byte
	n, plus := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n == len(digits) {
				return "", false
			}
			digits[n] = c
			n++
		case c == '+' && i == 0:
			plus = true
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	national := string(digits[:n])
	if plus {
		if !strings.HasPrefix(national, cc) {
			return "", false
		}
		national = national[len(cc):]
	}
	if len(national) < 4 || national[0] == '0' {
		return "", false
	}
	nn, err := strconv.ParseUint(national, 10, 64)
	if err != nil {
		return "", false
	}
	ccNum, _ := strconv.Atoi(cc)
	num := &phonenumbers.PhoneNumber{CountryCode: proto32(int32(ccNum)), NationalNumber: &nn}
	if !validForRegion(num, national, region) {
		return "", false
	}
	return "+" + cc + national, true
}

var regionCodes sync.Map // region → its country code as digits ("" for an unknown region)

func regionCode(region string) string {
	if v, ok := regionCodes.Load(region); ok {
		return v.(string)
	}
	code := ""
	if n := phonenumbers.GetCountryCodeForRegion(region); n != 0 {
		code = strconv.Itoa(n)
	}
	regionCodes.Store(region, code)
	return code
}

func proto32(v int32) *int32 { return &v }

// phoneKey packs an E.164 number into an integer for cheap de-duplication:
// at most 15 digits always fit.
func phoneKey(e164 string) uint64 {
	v, _ := strconv.ParseUint(strings.TrimPrefix(e164, "+"), 10, 64)
	return v
}

// clip shortens user input quoted back in an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}
