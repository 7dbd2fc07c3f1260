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
