package campaign

import "strings"

// Problem is one thing wrong with a user's input; Fields locates it the way
// the provider's validation errors do (["contacts", "row 12", "phone"]).
type Problem struct {
	Fields []string `json:"fields"`
	Msg    string   `json:"msg"`
}

// InputError is a mistake in what a user sent. The API answers it with 400
// (413 when TooLarge), never 500.
type InputError struct {
	Msg      string
	Problems []Problem
	TooLarge bool
}

func (e *InputError) Error() string {
	if len(e.Problems) == 0 {
		return e.Msg
	}
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, strings.Join(p.Fields, ".")+": "+p.Msg)
	}
	return e.Msg + " (" + strings.Join(parts, "; ") + ")"
}

// FieldError is an InputError about one field.
func FieldError(field, msg string) *InputError {
	return &InputError{Msg: msg, Problems: []Problem{{Fields: []string{field}, Msg: msg}}}
}
