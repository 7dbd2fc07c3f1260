package campaign

import (
	"regexp/syntax"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// Validity by prefix: libphonenumber's IsValidNumberForRegion matches a
// number against a dozen regular expressions of its region, tens of
// microseconds a number and most of an import's CPU. But most regions'
// patterns end in digits they leave free ("...[2-9]\d{6}"): whether a number
// is valid then depends on its length and all but its last few digits, and
// the numbers of a list share those prefixes by the thousand. So the answer
// is remembered by prefix, for the regions where that is provably the same
// answer: each of the region's patterns ends, in every alternative, with at
// least that many digits matched by \d.

// maxFreeDigits caps the digits a prefix leaves out: enough that a list's
// numbers share few prefixes, few enough that the memory stays small.
const maxFreeDigits = 4

// maxPrefixes bounds the remembered prefixes of a region; past it the
// memory starts over (a list of numbers from everywhere gains nothing
// from it anyway).
const maxPrefixes = 1 << 16

// regionValidity remembers a region's answers by prefix.
type regionValidity struct {
	free int // trailing digits no pattern of the region constrains, at most maxFreeDigits; 0: do not remember

	mu    sync.Mutex
	known map[string]bool // national number's length and prefix → valid
}

var validities sync.Map // region → *regionValidity

// validForRegion is phonenumbers.IsValidNumberForRegion of num, whose
// national significant number is national (no leading zero) and whose
// country code is the region's.
func validForRegion(num *phonenumbers.PhoneNumber, national, region string) bool {
	rv := validityOf(region)
	if rv.free == 0 || len(national) <= rv.free {
		return phonenumbers.IsValidNumberForRegion(num, region)
	}
	key := string(rune('0'+len(national))) + national[:len(national)-rv.free]
	rv.mu.Lock()
	valid, ok := rv.known[key]
	rv.mu.Unlock()
	if ok {
		return valid
	}
	valid = phonenumbers.IsValidNumberForRegion(num, region)
	rv.mu.Lock()
	if len(rv.known) >= maxPrefixes {
		rv.known = map[string]bool{}
	}
	rv.known[key] = valid
	rv.mu.Unlock()
	return valid
}

func validityOf(region string) *regionValidity {
	if v, ok := validities.Load(region); ok {
		return v.(*regionValidity)
	}
	v, _ := validities.LoadOrStore(region, &regionValidity{free: freeDigitsOf(region), known: map[string]bool{}})
	return v.(*regionValidity)
}

// freeDigitsOf is how many trailing digits none of the region's number
// patterns constrains (capped at maxFreeDigits); 0 when one does, or the
// region's metadata cannot be read.
func freeDigitsOf(region string) int {
	collection, err := phonenumbers.MetadataCollection()
	if err != nil {
		return 0
	}
	for _, md := range collection.GetMetadata() {
		if md.GetId() != region {
			continue
		}
		free := maxFreeDigits
		for _, desc := range []*phonenumbers.PhoneNumberDesc{
			md.GetGeneralDesc(), md.GetPremiumRate(), md.GetTollFree(), md.GetSharedCost(), md.GetVoip(),
			md.GetPersonalNumber(), md.GetPager(), md.GetUan(), md.GetVoicemail(), md.GetFixedLine(), md.GetMobile(),
		} {
			pattern := desc.GetNationalNumberPattern()
			if pattern == "" || pattern == "NA" {
				continue // libphonenumber's "none of this type": matches no number, the same answer for all
			}
			re, err := syntax.Parse(pattern, syntax.Perl)
			if err != nil {
				return 0
			}
			free = min(free, trailingFreeDigits(re))
		}
		return free
	}
	return 0
}

// trailingFreeDigits is how many trailing characters of any string re
// matches are matched by \d alone: changing them to other digits cannot
// change whether re matches. Conservative: 0 whenever it is not sure.
func trailingFreeDigits(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpCapture:
		return trailingFreeDigits(re.Sub[0])
	case syntax.OpAlternate:
		free := -1
		for _, sub := range re.Sub {
			if f := trailingFreeDigits(sub); free < 0 || f < free {
				free = f
			}
		}
		return max(free, 0)
	case syntax.OpConcat:
		free := 0
		for i := len(re.Sub) - 1; i >= 0; i-- {
			n, fixed := freeDigitRun(re.Sub[i])
			if !fixed {
				return free + trailingFreeDigits(re.Sub[i])
			}
			free += n // a run of exactly n free digits: look at what comes before it
		}
		return free
	}
	n, _ := freeDigitRun(re)
	return n
}

// freeDigitRun answers, for re matching only digits by \d (a class of
// exactly 0-9, or a repeat of one), the fewest digits it matches, and
// whether it always matches exactly that many; 0 and false otherwise.
func freeDigitRun(re *syntax.Regexp) (int, bool) {
	isDigit := func(r *syntax.Regexp) bool {
		return r.Op == syntax.OpCharClass && len(r.Rune) == 2 && r.Rune[0] == '0' && r.Rune[1] == '9'
	}
	switch {
	case isDigit(re):
		return 1, true
	case re.Op == syntax.OpRepeat && isDigit(re.Sub[0]):
		return re.Min, re.Min == re.Max
	case re.Op == syntax.OpPlus && isDigit(re.Sub[0]):
		return 1, false
	case re.Op == syntax.OpCapture:
		return freeDigitRun(re.Sub[0])
	}
	return 0, false
}
