package templating

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPickIsDeterministicPerRecipientAndVaries(t *testing.T) {
	tmpl, err := Parse("t", `{{pick "Hi" "Hello" "Hey"}} {{.name}}, {{pick "thanks" "cheers"}}`)
	if err != nil {
		t.Fatal(err)
	}
	row := map[string]string{"name": "Ana"}
	greetings := map[string]int{}
	pairs := map[string]bool{}
	for i := range 600 {
		c := Campaign{ID: "c1", Recipient: fmt.Sprintf("+1415555%04d", i)}
		first, err := tmpl.Render(row, c)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if again, _ := tmpl.Render(row, c); again != first {
				t.Fatalf("recipient %s: %q then %q", c.Recipient, first, again)
			}
		}
		greetings[strings.Fields(first)[0]]++
		pairs[first] = true
	}
	for _, g := range []string{"Hi", "Hello", "Hey"} {
		// 200 expected each; a fair split stays well within 150..250.
		if n := greetings[g]; n < 150 || n > 250 {
			t.Errorf("%q went to %d of 600 recipients, want about 200: %v", g, n, greetings)
		}
	}
	if len(pairs) != 6 {
		t.Errorf("the two picks of a message made %d combinations, want all 6 (picks tied to each other?)", len(pairs))
	}
	other, _ := tmpl.Render(row, Campaign{ID: "c2", Recipient: "+14155550000"})
	same, _ := tmpl.Render(row, Campaign{ID: "c2", Recipient: "+14155550000"})
	if other != same {
		t.Errorf("campaign c2: %q then %q", other, same)
	}
}

func TestPickRefusesNoChoices(t *testing.T) {
	_, err := Parse("t", `{{pick}} there`)
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Error(), "pick takes at least 1 argument") {
		t.Fatalf("Parse({{pick}}) = %v, want a SyntaxError saying pick needs an argument", err)
	}
}

func TestPickChargesTheBudget(t *testing.T) {
	tmpl, err := Parse("t", `{{pick .a .a .a .a .a .a .a .a .a .a}}{{pick .a .a .a .a .a .a .a .a .a .a}}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(map[string]string{"a": strings.Repeat("x", 4000)}, Campaign{ID: "c", Recipient: "r"})
	var re *RenderError
	if !errors.As(err, &re) {
		t.Fatalf("picking among 80 KB of text: %v, want a RenderError for the spent budget", err)
	}
}
