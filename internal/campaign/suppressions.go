package campaign

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wacampaign/wacampaign/internal/audience"
)

// AudienceAddress reads a phone or a JID as the suppression list keys it:
// a phone (or a person's JID) in E.164, a group's JID as the provider
// takes it.
func AudienceAddress(raw, region string) (string, error) {
	if strings.Contains(raw, "@") {
		jid, err := NormalizeJID(raw)
		if err != nil {
			return "", err
		}
		if p := jidPhone(jid); p != "" {
			return p, nil
		}
		return jid, nil
	}
	return NormalizePhone(raw, region)
}

// SuppressionInput is one suppression as a client sends it.
type SuppressionInput struct {
	Phone  string `json:"phone"`
	JID    string `json:"jid"`
	Reason string `json:"reason"`
	Source string `json:"source"`
}

// maxReasonLength bounds a suppression's reason, in characters.
const maxReasonLength = 500

// Entry checks in and answers the entry it asks for, with source
// defaultSource when it names none; a problem names the field, under
// prefix (like "suppressions.3" or "row 4").
func (in SuppressionInput) Entry(region string, defaultSource audience.Source, at time.Time, prefix string) (audience.Entry, []Problem) {
	var problems []Problem
	field := func(name string) []string {
		if prefix == "" {
			return []string{name}
		}
		return []string{prefix, name}
	}
	raw, name := in.Phone, "phone"
	if raw == "" {
		raw, name = in.JID, "jid"
	}
	e := audience.Entry{Reason: strings.TrimSpace(in.Reason), Source: defaultSource, At: at}
	if strings.TrimSpace(raw) == "" {
		problems = append(problems, Problem{Fields: field("phone"), Msg: "phone (or jid) is required"})
	} else if addr, err := AudienceAddress(raw, region); err != nil {
		problems = append(problems, Problem{Fields: field(name), Msg: err.Error()})
	} else {
		e.Address = addr
	}
	if in.Source != "" {
		if !audience.ValidSource(in.Source) {
			problems = append(problems, Problem{Fields: field("source"), Msg: fmt.Sprintf("source %q is not one of keyword, api, import, bounce", in.Source)})
		}
		e.Source = audience.Source(in.Source)
	}
	if utf8.RuneCountInString(e.Reason) > maxReasonLength {
		problems = append(problems, Problem{Fields: field("reason"), Msg: fmt.Sprintf("reason is longer than %d characters", maxReasonLength)})
	}
	return e, problems
}

// MaxSuppressionRows caps one suppression import.
const MaxSuppressionRows = 100_000

// ReadSuppressionsCSV reads a suppression file: a header naming a phone
// (or jid) column and optionally reason and source, then one address a
// row. Any bad row refuses the whole file (an *InputError naming the rows,
// the first 20), so that a file is never half imported.
func ReadSuppressionsCSV(r io.Reader, region string, at time.Time) ([]audience.Entry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, FieldError("file", "the suppression file is empty")
	}
	if err != nil {
		return nil, FieldError("file", "the suppression file is not CSV: "+err.Error())
	}
	cols := map[string]int{}
	for i, h := range header {
		cols[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))] = i
	}
	_, hasPhone := cols["phone"]
	_, hasJID := cols["jid"]
	if !hasPhone && !hasJID {
		return nil, FieldError("file", "the suppression file's header has no phone or jid column")
	}
	var entries []audience.Entry
	var problems []Problem
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, FieldError("file", fmt.Sprintf("row %d is not CSV: %v", row, err))
		}
		if len(entries) >= MaxSuppressionRows {
			return nil, FieldError("file", fmt.Sprintf("the suppression file has more than %d rows; split it", MaxSuppressionRows))
		}
		get := func(name string) string {
			if i, ok := cols[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		in := SuppressionInput{Phone: get("phone"), JID: get("jid"), Reason: get("reason"), Source: get("source")}
		if in.Phone == "" && in.JID == "" && in.Reason == "" && in.Source == "" {
			continue // an empty row, as spreadsheets leave
		}
		e, p := in.Entry(region, audience.SourceImport, at, "row "+strconv.Itoa(row))
		if len(p) > 0 {
			if len(problems) < 20 {
				problems = append(problems, p...)
			}
			continue
		}
		entries = append(entries, e)
	}
	if len(problems) > 0 {
		return nil, &InputError{Msg: "the suppression file has bad rows; nothing was imported", Problems: problems}
	}
	if len(entries) == 0 {
		return nil, FieldError("file", "the suppression file has no rows")
	}
	return entries, nil
}
