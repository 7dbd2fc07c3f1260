package audience

import (
	"fmt"
	"strings"
	"unicode"
)

// Verdict is what an incoming message's text asks for.
type Verdict int

const (
	NoKeyword Verdict = iota // an ordinary reply
	OptOut                   // stop messaging me
	OptIn                    // messages are welcome again
)

// DefaultOptOut are the opt-out keywords when OPTOUT_KEYWORDS is unset:
// English, then Spanish, Portuguese, German, French and Indonesian.
var DefaultOptOut = []string{
	"STOP", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPT OUT", "OPTOUT",
	"PARAR", "BAJA", "DARSE DE BAJA", "CANCELAR", "ALTO", "DETENER",
	"SAIR", "DESCADASTRAR", "REMOVER", "DESINSCREVER",
	"STOPP", "ABMELDEN", "ABBESTELLEN", "AUFHÖREN",
	"ARRÊT", "ARRÊTER", "DÉSABONNER", "DÉSINSCRIRE", "DÉSINSCRIPTION",
	"BERHENTI", "BATAL", "STOP LANGGANAN", "BERHENTI LANGGANAN",
}

// DefaultOptIn are the opt-in keywords when OPTIN_KEYWORDS is unset.
var DefaultOptIn = []string{
	"START", "UNSTOP", "SUBSCRIBE", "RESUME",
	"ALTA", "DARSE DE ALTA", "INICIAR", "REANUDAR",
	"VOLTAR", "ASSINAR", "RETOMAR",
	"ANMELDEN", "STARTEN",
	"DÉMARRER", "ABONNER", "REPRENDRE",
	"MULAI", "LANGGANAN", "BERLANGGANAN",
}

// Keywords reads opt-out and opt-in keywords in incoming messages. A
// message matches when its whole text is a keyword, whatever its case,
// spaces, punctuation and accents: "Stop!", " s t o p ", "ARRET" and
// "arrêt." all match; "stop sending me ads please" does not.
type Keywords struct {
	optOut, optIn map[string]string // folded keyword → as configured
}

// NewKeywords builds the matcher; nil lists take the defaults. A word in
// both lists is a configuration mistake, and so is one with nothing left
// once folded ("!!!").
func NewKeywords(optOut, optIn []string) (*Keywords, error) {
	if optOut == nil {
		optOut = DefaultOptOut
	}
	if optIn == nil {
		optIn = DefaultOptIn
	}
	k := &Keywords{optOut: map[string]string{}, optIn: map[string]string{}}
	for _, w := range optOut {
		f := Fold(w)
		if f == "" {
			return nil, fmt.Errorf("opt-out keyword %q has no letters or digits", w)
		}
		k.optOut[f] = w
	}
	for _, w := range optIn {
		f := Fold(w)
		if f == "" {
			return nil, fmt.Errorf("opt-in keyword %q has no letters or digits", w)
		}
		if _, both := k.optOut[f]; both {
			return nil, fmt.Errorf("keyword %q is both an opt-out and an opt-in keyword", w)
		}
		k.optIn[f] = w
	}
	return k, nil
}

// Match says what text asks for.
func (k *Keywords) Match(text string) Verdict {
	f := Fold(text)
	if f == "" || len(f) > 64 {
		return NoKeyword
	}
	if _, ok := k.optOut[f]; ok {
		return OptOut
	}
	if _, ok := k.optIn[f]; ok {
		return OptIn
	}
	return NoKeyword
}

// Fold is text reduced to what a keyword match compares: lower-case letters
// and digits, without accents, spaces or punctuation.
func Fold(text string) string {
	var b strings.Builder
	for _, r := range text {
		r = unicode.ToLower(r)
		if base, ok := unaccented[r]; ok {
			b.WriteString(base)
			continue
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unaccented maps the accented letters of the default languages onto their
// base letters, so that "ARRET" typed without accents still matches.
var unaccented = map[rune]string{
	'á': "a", 'à': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a",
	'é': "e", 'è': "e", 'ê': "e", 'ë': "e",
	'í': "i", 'ì': "i", 'î': "i", 'ï': "i",
	'ó': "o", 'ò': "o", 'ô': "o", 'õ': "o", 'ö': "o",
	'ú': "u", 'ù': "u", 'û': "u", 'ü': "u",
	'ç': "c", 'ñ': "n", 'ß': "ss",
}
