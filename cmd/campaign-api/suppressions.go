package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
)

// maxSuppressionUpload bounds a suppression import (JSON or CSV).
const maxSuppressionUpload = 16 << 20

// listSuppressions: GET /v1/suppressions, paged by address (cursor,
// limit), or ?format=csv for the whole list as a file.
func (s *server) listSuppressions(w http.ResponseWriter, r *http.Request) {
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
	case "csv":
		s.exportSuppressions(w, r)
		return
	default:
		writeProblem(w, fieldProblem("format", "format must be json or csv, not "+strconv.Quote(f)))
		return
	}
	limit, problem := intParam(r, "limit", 100, 1, 1000)
	if problem != nil {
		writeProblem(w, problem)
		return
	}
	entries, next, err := s.audience.List(r.Context(), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	total, err := s.audience.Count(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if entries == nil {
		entries = []audience.Entry{}
	}
	var nextCursor *string
	if next != "" {
		nextCursor = &next
	}
	writeOK(w, http.StatusOK, map[string]any{"suppressions": entries, "next_cursor": nextCursor, "total": total})
}

// exportSuppressions writes the whole list as CSV, in the columns an
// import reads back (phone or jid, reason, source) and when and why.
func (s *server) exportSuppressions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="suppressions.csv"`)
	out := csv.NewWriter(w)
	_ = out.Write([]string{"phone", "jid", "reason", "source", "at", "why", "campaign"})
	cursor := ""
	for {
		page, next, err := s.audience.List(r.Context(), cursor, 1000)
		if err != nil {
			_ = out.Write([]string{"# the export broke off: " + err.Error()})
			out.Flush()
			return
		}
		for _, e := range page {
			phone, jid := e.Address, ""
			if len(phone) == 0 || phone[0] != '+' {
				phone, jid = "", e.Address
			}
			_ = out.Write([]string{phone, jid, cell(e.Reason), string(e.Source), e.At.UTC().Format(time.RFC3339), cell(e.Why), e.Campaign})
		}
		out.Flush()
		if next == "" || out.Error() != nil {
			return
		}
		cursor = next
	}
}

// addSuppressions: POST /v1/suppressions. JSON: one object {"phone" or
// "jid", "reason", "source"} or an array of them (source api unless
// named); CSV: a file (text/csv, or a multipart form's "file") with a
// phone or jid column and optional reason and source (source import).
// Nothing is stored unless every entry is good.
func (s *server) addSuppressions(w http.ResponseWriter, r *http.Request) {
	entries, one, err := s.readSuppressions(r)
	if err != nil {
		var in *campaign.InputError
		if errors.As(err, &in) {
			writeProblem(w, in)
			return
		}
		s.internalError(w, r, err)
		return
	}
	if one {
		added, err := s.audience.Suppress(r.Context(), entries[0])
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		e, _, err := s.audience.Get(r.Context(), entries[0].Address)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		status := http.StatusOK
		if added {
			status = http.StatusCreated
		}
		writeOK(w, status, e)
		return
	}
	if err := s.audience.SuppressMany(r.Context(), entries); err != nil {
		s.internalError(w, r, err)
		return
	}
	writeOK(w, http.StatusCreated, map[string]any{"suppressed": len(entries)})
}

// readSuppressions reads the body of POST /v1/suppressions; one says it
// was a single JSON object.
func (s *server) readSuppressions(r *http.Request) (entries []audience.Entry, one bool, err error) {
	now := time.Now().UTC()
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "text/csv":
		entries, err = campaign.ReadSuppressionsCSV(io.LimitReader(r.Body, maxSuppressionUpload), s.region, now)
		return entries, false, err
	case "multipart/form-data":
		r.Body = http.MaxBytesReader(nil, r.Body, maxSuppressionUpload)
		f, _, ferr := r.FormFile("file")
		if ferr != nil {
			return nil, false, fieldProblem("file", "send the suppression CSV as the form's file field: "+ferr.Error())
		}
		defer f.Close()
		entries, err = campaign.ReadSuppressionsCSV(f, s.region, now)
		return entries, false, err
	case "application/json":
		return s.readSuppressionsJSON(r, now)
	}
	return nil, false, fieldProblem("Content-Type", "send application/json, text/csv or a multipart form with a file; got "+orNone(mediaType))
}

func (s *server) readSuppressionsJSON(r *http.Request, now time.Time) ([]audience.Entry, bool, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSuppressionUpload+1))
	if err != nil || len(body) > maxSuppressionUpload {
		return nil, false, fieldProblem("body", "the body cannot be read, or is over 16 MiB")
	}
	var inputs []campaign.SuppressionInput
	trimmed := bytes.TrimSpace(body)
	one := len(trimmed) > 0 && trimmed[0] == '{'
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if one {
		var in campaign.SuppressionInput
		err = dec.Decode(&in)
		inputs = append(inputs, in)
	} else {
		err = dec.Decode(&inputs)
	}
	if err != nil {
		return nil, false, fieldProblem("body", "the body is not a suppression object {\"phone\",\"reason\",\"source\"} or an array of them: "+err.Error())
	}
	if len(inputs) == 0 || len(inputs) > campaign.MaxSuppressionRows {
		return nil, false, fieldProblem("body", "send from 1 to "+strconv.Itoa(campaign.MaxSuppressionRows)+" suppressions")
	}
	entries := make([]audience.Entry, 0, len(inputs))
	var problems []campaign.Problem
	for i, in := range inputs {
		prefix := ""
		if !one {
			prefix = strconv.Itoa(i)
		}
		e, p := in.Entry(s.region, audience.SourceAPI, now, prefix)
		problems = append(problems, p...)
		entries = append(entries, e)
	}
	if len(problems) > 0 {
		return nil, false, &campaign.InputError{Msg: problems[0].Msg, Problems: problems[:min(len(problems), 20)]}
	}
	return entries, one, nil
}

// removeSuppression: DELETE /v1/suppressions/{phone} (a phone or a JID):
// the address may be messaged again.
func (s *server) removeSuppression(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("phone")
	address, err := campaign.AudienceAddress(raw, s.region)
	if err != nil {
		writeProblem(w, fieldProblem("phone", err.Error()))
		return
	}
	removed, err := s.audience.Unsuppress(r.Context(), address)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !removed {
		writeError(w, http.StatusNotFound, "not_found", address+" is not suppressed", nil)
		return
	}
	writeOK(w, http.StatusOK, map[string]any{"address": address, "removed": true})
}
