package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/sender"
)

// The contact readers and the phone normaliser take whatever people upload.
// These fuzz targets run their seeds under plain go test; fuzz them with
//
//	go test -run=^$ -fuzz=^FuzzCSVContacts$ -fuzztime=10s ./internal/campaign
//
// (and FuzzJSONContacts, FuzzNormalizePhone likewise).

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// checkRows reads every row of src the way an import does and checks that
// each is accepted (its key normalised: a phone in E.164, a JID or a chat
// id that reads back as itself; its values storable), rejected with
// a reason, or skipped, and that row numbers only go forward. A reader that
// may break off (JSON) passes readErrOK, which says whether its error is
// one it may answer.
func checkRows(t *testing.T, src rowSource, size int, readErrOK func(error) bool) {
	t.Helper()
	lay := src.columnsOf()
	if len(lay.keys) == 0 || len(lay.header) != len(lay.columns) {
		t.Fatalf("layout %+v: a key column must be one of the columns", lay)
	}
	for _, k := range lay.keys {
		if k.index < 0 || k.index >= len(lay.columns) {
			t.Fatalf("layout %+v: key column %d is not one of the columns", lay, k.index)
		}
	}
	run, err := (&Importer{region: "US", caps: sender.TimelinesCapabilities()}).newRun(nil, src)
	if err != nil {
		t.Fatalf("TimelinesAI refused the key columns of %+v: %v", lay, err)
	}
	lastRow := 0
	for n := 0; ; n++ {
		if n > size+1 {
			t.Fatalf("more than %d rows from %d bytes: the reader does not move on", n, size)
		}
		rec, row, problem, err := src.next()
		if err == io.EOF {
			return
		}
		if err != nil {
			if readErrOK == nil || !readErrOK(err) {
				t.Fatalf("row after %d: %T %v", lastRow, err, err)
			}
			return
		}
		if row <= lastRow {
			t.Fatalf("row %d comes after row %d", row, lastRow)
		}
		lastRow = row
		if problem != "" {
			continue // rejected by the reader, with its reason
		}
		values, key, problem := run.checkRow(rec)
		switch {
		case values == nil && problem == "":
			// skipped: a row of empty cells
		case problem != "":
			// rejected, with its reason
		default:
			if len(values) != len(lay.columns) {
				t.Fatalf("row %d: %d values for %d columns", row, len(values), len(lay.columns))
			}
			checkKey(t, row, key)
			for _, v := range values {
				if strings.Contains(v, fieldSeparator) {
					t.Fatalf("row %d: value %q holds the storage separator", row, v)
				}
			}
		}
	}
}

// checkKey checks that an accepted row's key is normalised: what the
// providers take, and unchanged by a second normalisation.
func checkKey(t *testing.T, row int, key recipientKey) {
	t.Helper()
	var again string
	var err error
	switch key.kind {
	case KindPhone:
		if !e164.MatchString(key.value) {
			t.Fatalf("row %d accepted with phone %q, not E.164", row, key.value)
		}
		return
	case KindJID:
		again, err = NormalizeJID(key.value)
	case KindChatID:
		again, err = NormalizeChatID(key.value)
	default:
		t.Fatalf("row %d accepted with a key of kind %q", row, key.kind)
	}
	if err != nil || again != key.value {
		t.Fatalf("row %d accepted with %s %q, which normalises to %q, %v", row, key.kind, key.value, again, err)
	}
}

func FuzzCSVContacts(f *testing.F) {
	for _, seed := range []string{
		"phone,name\n+12025550101,Ann\n(202) 555-0102,Bob\n",
		"\xEF\xBB\xBFPhone;First Name;City\n+44 20 7946 0958;Jos\xe9;Paris\n\n202-555-0103;\"Multi\nline\";\"Quoted \"\"x\"\"\"\n",
		"phone\tname\n1.2025550101E+10\tExcel\n123\tShort\n+12025550104\tA\tB\n,,\n",
		"mobile,file_uid\n+12025550105,inv-1\n\"broken,quote\n",
		"name,city\nAnn,Paris\n",
		"phone,phone\n+12025550106,+12025550107\n",
		"PK\x03\x04 not a csv",
		"",
		"phone\n\x00\x01\x02",
		"phone,name\n+12025550108,\x1fsep\x1f\n",
		"phone,jid,chat_id,name\n+12025550109,,,Ann\n,120363025551234567@G.US,,Group\n,,42,Chat\n, +1 202 555 0110@s.whatsapp.net ,,Bob\n,,-3,Bad\n,a@b@c,,Bad\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := openCSV(bytes.NewReader(data))
		if err != nil {
			var input *InputError
			if !errors.As(err, &input) || input.Msg == "" {
				t.Fatalf("openCSV: %T %v; want an InputError that says why", err, err)
			}
			return
		}
		checkRows(t, in, len(data), nil) // a file in memory never breaks off
	})
}

func FuzzJSONContacts(f *testing.F) {
	for _, seed := range []string{
		`[{"phone":"+12025550101","name":"Ann","age":31,"vip":true},{"phone":"(202) 555-0102","name":null},"not an object",{"phone":"123"},{"phone":"+12025550103","name":{"x":1}}]`,
		`{"phone":"+12025550101","Name":"Ann"}` + "\n" + `{"phone":"+12025550102"}`,
		`[{"name":"no phone"}]`,
		`[]`,
		`[{"phone":"+12025550101"},`,
		`[{"phone":"+12025550101"}}`,
		`[{"phone":"+12025550101","phone":"+12025550102"}]`,
		`[{"phone":1.2025550101E+10,"n":-0.5e3}]`,
		`[{"Phone":"+12025550101","PHONE":"x"}]`,
		`[{"jid":"120363025551234567@g.us","phone":""},{"jid":"14155550100@S.WHATSAPP.NET"},{"chat_id":7,"jid":""}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		inArray := bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("["))
		if inArray {
			if _, err := dec.Token(); err != nil {
				t.Fatalf("reading the [ that is there: %v", err)
			}
		}
		in, err := openJSONContacts(dec, inArray)
		if err != nil {
			var input *InputError
			if !errors.As(err, &input) || input.Msg == "" {
				t.Fatalf("openJSONContacts: %T %v; want an InputError that says why", err, err)
			}
			return
		}
		// A body that stops being JSON ends the upload; nothing else may.
		checkRows(t, in, len(data), brokenJSON)
	})
}

func FuzzNormalizePhone(f *testing.F) {
	regions := []string{"US", "GB", "DE", "IN", "BR", "AR", "MX", "ES", "FR", "NG", "CN", "ZZ"}
	for i, seed := range []string{
		"+14155550100", "(415) 555-0100", "0044 20 7946 0958", "020 7946 0958", "1.4155550100E+10",
		"+1 415 555 0100 ext. 12", "", "+", "00", "++1415", "415-555-0100 x", "＋１４１５５５５０１００",
		"011 54 9 11 1234 5678", "+549111234567890123456789", "tel:+14155550100", "1-800-FLOWERS",
	} {
		f.Add(seed, uint8(i%len(regions)))
	}
	f.Fuzz(func(t *testing.T, raw string, region uint8) {
		r := regions[int(region)%len(regions)]
		got, err := NormalizePhone(raw, r)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error that says nothing")
			}
			return
		}
		if !e164.MatchString(got) {
			t.Fatalf("NormalizePhone(%q, %s) = %q, not E.164", raw, r, got)
		}
		if again, err := NormalizePhone(got, r); err != nil || again != got {
			t.Fatalf("NormalizePhone(%q, %s) = %q, which normalises to %q (%v)", raw, r, got, again, err)
		}
	})
}
