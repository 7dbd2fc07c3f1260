package sandbox

import "testing"

func TestPhonesWithoutPlusAreReadInTheDefaultRegion(t *testing.T) {
	tests := []struct {
		region, written, want string
	}{
		{"", "(415) 555-1234", "+14155551234"}, // the provider's guide's example: US, not +41
		{"", "415-555-1234", "+14155551234"},
		{"", "14155551234", "+14155551234"},      // the country code without +
		{"", "972540000001", "+972540000001"},    // not a US number: the digits carry their country code
		{"", "+41 44 668 18 00", "+41446681800"}, // with +: as written
		{"US", "(415) 555-1234", "+14155551234"},
		{"GB", "020 7946 0018", "+442079460018"},
		{"GB", "(415) 555-1234", "+4155551234"}, // not a GB number either
	}
	for _, tt := range tests {
		s, ts := start(t, Config{Credits: 10, DefaultRegion: tt.region})
		call(t, ts, "POST", "/messages", text(tt.written, "hi")).uid(t)
		if got := s.Messages()[0].Recipient; got != tt.want {
			t.Errorf("region %q: %q read as %s, want %s", tt.region, tt.written, got, tt.want)
		}
		// Everything that reads a phone reads it the same way.
		s.Inject(Fault{Op: OpSend, Phone: tt.written, Status: 418, Body: "teapot", Times: 1})
		if r := call(t, ts, "POST", "/messages", text(tt.want, "again")); r.status != 418 {
			t.Errorf("region %q: a fault for %q did not match %s (got %d)", tt.region, tt.written, tt.want, r.status)
		}
	}
}
