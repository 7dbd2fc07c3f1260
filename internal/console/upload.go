package console

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
)

// Uploads (a new campaign's contacts, a sequence's enrolments) are relayed
// to the API as they arrive, never held whole: the browser's multipart form
// is read part by part and written, part by part, into the multipart body
// of the API request, which the API reads while the browser is still
// sending. The form's hidden fields come first (csrf, then the others), so
// the CSRF token is checked before anything reaches the API.

// leadFields are the hidden fields at the top of an upload form.
var leadFields = map[string]bool{"csrf": true, "idempotency_key": true, "tz": true}

// maxFieldBytes bounds a form field other than the file.
const maxFieldBytes = 64 << 10

// upload is a browser's multipart form being relayed.
type upload struct {
	mr      *multipart.Reader
	lead    map[string]string // the hidden fields
	pending *multipart.Part   // the first part after them
	Fields  map[string]string // every field as the user sent it, to fill the form again
	File    string            // the file's name, "" when none was chosen
}

// errNoCSRF is an upload whose form did not carry the session's token.
var errNoCSRF = errors.New("console: the form has no valid CSRF token")

// openUpload reads the hidden fields of an upload form and checks its CSRF
// token.
func openUpload(r *http.Request, s *session) (*upload, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fieldError(http.StatusBadRequest, "contacts", "The form could not be read: "+err.Error())
	}
	u := &upload{mr: mr, lead: map[string]string{}, Fields: map[string]string{}}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fieldError(http.StatusBadRequest, "contacts", "The form broke off: "+err.Error())
		}
		if !leadFields[part.FormName()] {
			u.pending = part
			break
		}
		v, err := readField(part)
		if err != nil {
			return nil, err
		}
		u.lead[part.FormName()] = v
	}
	if !s.validCSRF(u.lead["csrf"]) {
		return nil, errNoCSRF
	}
	return u, nil
}

func readField(part *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
	if err != nil {
		return "", fieldError(http.StatusBadRequest, part.FormName(), "The form broke off: "+err.Error())
	}
	if len(b) > maxFieldBytes {
		return "", fieldError(http.StatusBadRequest, part.FormName(), "This field is too long.")
	}
	return string(b), nil
}

// fieldRule says what becomes of a form field on its way to the API: the
// value to send (the same, or converted), skip to leave it out, or an error
// for the form.
type fieldRule func(name, value string) (out string, skip bool, err error)

// relay writes the rest of the form into w as the API's multipart body,
// fields through rule, the file part named fileField as it is. It closes
// the body when done, with the error that stopped it, if any.
func (u *upload) relay(body *io.PipeWriter, mw *multipart.Writer, fileField string, rule fieldRule) error {
	err := u.relayParts(mw, fileField, rule)
	if err == nil {
		err = mw.Close()
	}
	_ = body.CloseWithError(err) // nil closes it normally
	return err
}

func (u *upload) relayParts(mw *multipart.Writer, fileField string, rule fieldRule) error {
	for part := u.pending; part != nil; {
		if err := u.relayPart(mw, part, fileField, rule); err != nil {
			return err
		}
		next, err := u.mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fieldError(http.StatusBadRequest, fileField, "The upload broke off: "+err.Error())
		}
		part = next
	}
	return nil
}

func (u *upload) relayPart(mw *multipart.Writer, part *multipart.Part, fileField string, rule fieldRule) error {
	name := part.FormName()
	if name == fileField {
		if part.FileName() == "" {
			return nil // no file chosen: the API says what is missing
		}
		u.File = part.FileName()
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, fileField, quoteEscaper.Replace(part.FileName())))
		h.Set("Content-Type", "text/csv")
		dst, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		_, err = io.Copy(dst, part)
		return err
	}
	value, err := readField(part)
	if err != nil {
		return err
	}
	u.Fields[name] = value
	out, skip, err := rule(name, value)
	if err != nil || skip {
		return err
	}
	return mw.WriteField(name, out)
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

// send relays the upload to the API as the request ar (whose body and
// content type it sets) and decodes the answer into out. An error of the
// form itself (a field rule's) wins over the API's answer to the broken
// body it caused.
func (c *Console) sendUpload(r *http.Request, u *upload, ar apiRequest, fileField string, rule fieldRule, out any) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	ar.body, ar.contentType = pr, mw.FormDataContentType()
	relayed := make(chan error, 1)
	go func() { relayed <- u.relay(pw, mw, fileField, rule) }()
	apiErr := c.call(r.Context(), ar, out)
	_ = pr.CloseWithError(errors.New("console: the API has answered")) // unblocks the relay
	formErr := <-relayed
	var mine *APIError
	if errors.As(formErr, &mine) {
		return mine
	}
	return apiErr
}
