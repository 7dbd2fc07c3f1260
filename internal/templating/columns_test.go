package templating

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeColumn(t *testing.T) {
	tests := []struct {
		header, want string
	}{
		{"First Name", "first_name"},
		{" E-mail ", "e_mail"},
		{"Ciudad/Región", "ciudad_región"},
		{"city", "city"},
		{"PHONE", "phone"},
		{"first_name", "first_name"},
		{"__first__name__", "first_name"},
		{"Date of  birth (dd/mm)", "date_of_birth_dd_mm"},
		{"Región\u0332", "región"},     // a mark with no composed form is not a letter: trailing run removed
		{"Regio\u0301n", "región"},     // decomposed é composes (NFC) instead of splitting the word
		{"\ufeffphone", "phone"},       // Excel's byte-order mark
		{"Straße", "straße"},           // lower-case already; ß kept
		{"ΌΝΟΜΑ", "όνομα"},             // Greek
		{"Имя клиента", "имя_клиента"}, // Cyrillic
		{"名前", "名前"},                   // CJK letters
		{"2nd phone", "2nd_phone"},     // leading digit kept (use index)
		{"Total (€)", "total"},
		{"", ""},
		{"  ", ""},
		{"---", ""},
		{"a--b", "a_b"},
	}
	for _, tt := range tests {
		if got := NormalizeColumn(tt.header); got != tt.want {
			t.Errorf("NormalizeColumn(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestNormalizeHeader(t *testing.T) {
	got, err := NormalizeHeader([]string{"Phone", "First Name", "", "City"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"phone", "first_name", "", "city"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	_, err = NormalizeHeader([]string{"Phone", "First Name", "first_name"})
	var dup *DuplicateColumnError
	if !errors.As(err, &dup) {
		t.Fatalf("err = %v, want *DuplicateColumnError", err)
	}
	if dup.Name != "first_name" || !slices.Equal(dup.Headers, []string{"First Name", "first_name"}) {
		t.Errorf("got %+v", dup)
	}
	for _, s := range []string{`"First Name"`, `"first_name"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not name %s", err, s)
		}
	}
}
