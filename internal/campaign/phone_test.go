package campaign

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func BenchmarkNormalizePhone(b *testing.B) {
	inputs := []string{"+12025550143", "(415) 555-0100", "2025550198", "+1 312-555-0177"}
	for _, in := range inputs {
		b.Run(fmt.Sprintf("%q", in), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := NormalizePhone(in, "US"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFastNormalizeAgreesWithTheLibrary: wherever the fast path answers, the
// general parse answers the same number; random inputs of many regions,
// lengths and spellings.
func TestFastNormalizeAgreesWithTheLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	regions := []string{"US", "CA", "GB", "DE", "FR", "IT", "ES", "IN", "BR", "MX", "RU", "AU", "AR", "NL", "SG", "ZA", "JP", "NG"}
	formats := []func(cc, nn string) string{
		func(cc, nn string) string { return "+" + cc + nn },
		func(cc, nn string) string { return nn },
		func(cc, nn string) string { return "+" + cc + " " + spaced(nn) },
		func(cc, nn string) string { return "(" + nn[:min(3, len(nn))] + ") " + nn[min(3, len(nn)):] },
		func(cc, nn string) string { return cc + nn },
	}
	fast, checked := 0, 0
	for i := 0; i < 200000; i++ {
		region := regions[rng.IntN(len(regions))]
		cc := regionCode(region)
		nn := make([]byte, 4+rng.IntN(11))
		for j := range nn {
			nn[j] = byte('0' + rng.IntN(10))
		}
		in := formats[rng.IntN(len(formats))](cc, string(nn))
		got, ok := fastNormalize(in, region)
		if !ok {
			continue
		}
		fast++
		num, err := phonenumbers.Parse(in, region)
		if err != nil || !phonenumbers.IsValidNumber(num) {
			t.Fatalf("%q in %s: fast path says %s, the library says invalid (%v)", in, region, got, err)
		}
		if want := phonenumbers.Format(num, phonenumbers.E164); got != want {
			t.Fatalf("%q in %s: fast path says %s, the library %s", in, region, got, want)
		}
		checked++
	}
	if fast < 1000 {
		t.Fatalf("only %d inputs took the fast path: the test checks too little", fast)
	}
	t.Logf("%d of 200000 random inputs took the fast path; all agree with the library", checked)
}

func spaced(nn string) string {
	var b strings.Builder
	for i, c := range nn {
		if i > 0 && i%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// TestNormalizePhoneRefusesMoreThan15Digits: the German numbering plan's
// patterns accept a 16-digit number that E.164 does not (found by fuzzing).
func TestNormalizePhoneRefusesMoreThan15Digits(t *testing.T) {
	for _, in := range []string{"20100000000000", "+4920100000000000"} {
		if got, err := NormalizePhone(in, "DE"); err == nil || !strings.Contains(err.Error(), "15 digits") {
			t.Errorf("NormalizePhone(%q, DE) = %q, %v; want refused as longer than 15 digits", in, got, err)
		}
	}
	if got, err := NormalizePhone("+49 30 901820", "DE"); err != nil || got != "+4930901820" {
		t.Errorf("a German number of normal length: %q, %v", got, err)
	}
}

// TestValidityByPrefixAgreesWithTheLibrary: a number whose prefix was
// answered for a sibling (same length, other last digits) gets the
// library's own answer, valid or not, in every region the prefix memory
// is used for; and the US, the default region, uses it.
func TestValidityByPrefixAgreesWithTheLibrary(t *testing.T) {
	if validityOf("US").free == 0 {
		t.Fatal("US numbers are not remembered by prefix: every import pays the full validation")
	}
	rng := rand.New(rand.NewPCG(3, 5))
	regions := []string{"US", "CA", "FR", "ES", "IN", "BR", "MX", "RU", "AR", "SG", "ZA", "JP", "NG", "GB", "DE"}
	valid, invalid := 0, 0
	for i := 0; i < 100000; i++ {
		region := regions[rng.IntN(len(regions))]
		free := validityOf(region).free
		cc := phonenumbers.GetCountryCodeForRegion(region)
		n := 6 + rng.IntN(7)
		digits := []byte(fmt.Sprint(1 + rng.IntN(9)))
		for len(digits) < n {
			digits = append(digits, byte('0'+rng.IntN(10)))
		}
		sibling := append([]byte(nil), digits...)
		for j := len(sibling) - free; j < len(sibling) && free > 0; j++ {
			sibling[j] = byte('0' + rng.IntN(10))
		}
		validForRegion(numberOf(cc, string(sibling)), string(sibling), region)
		num := numberOf(cc, string(digits))
		got, want := validForRegion(num, string(digits), region), phonenumbers.IsValidNumberForRegion(num, region)
		if got != want {
			t.Fatalf("%s %s (after %s): valid %v, the library says %v", region, digits, sibling, got, want)
		}
		if want {
			valid++
		} else {
			invalid++
		}
	}
	if valid < 1000 || invalid < 1000 {
		t.Fatalf("only %d valid and %d invalid numbers tried", valid, invalid)
	}
}

func numberOf(cc int, national string) *phonenumbers.PhoneNumber {
	var nn uint64
	fmt.Sscan(national, &nn)
	return &phonenumbers.PhoneNumber{CountryCode: proto32(int32(cc)), NationalNumber: &nn}
}
