package audience

import "testing"

func TestKeywordMatching(t *testing.T) {
	k, err := NewKeywords(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text string
		want Verdict
	}{
		{"STOP", OptOut},
		{"stop", OptOut},
		{"  Stop!  ", OptOut},
		{"S T O P", OptOut},
		{"stop.", OptOut},
		{"¡Stop!", OptOut},
		{"Unsubscribe", OptOut},
		{"cancel", OptOut},
		{"opt-out", OptOut},
		{"PARAR", OptOut},         // es, pt
		{"baja", OptOut},          // es
		{"Darse de baja", OptOut}, // es
		{"sair", OptOut},          // pt
		{"Cancelar", OptOut},      // es, pt
		{"STOPP", OptOut},         // de
		{"abmelden", OptOut},      // de
		{"Arrêt", OptOut},         // fr
		{"ARRET", OptOut},         // fr, typed without its accent
		{"désabonner", OptOut},    // fr
		{"DESABONNER", OptOut},    // fr, without the accent
		{"berhenti", OptOut},      // id
		{"START", OptIn},
		{"start.", OptIn},
		{"Unstop", OptIn},
		{"iniciar", OptIn},                        // es, pt
		{"anmelden", OptIn},                       // de
		{"démarrer", OptIn},                       // fr
		{"MULAI", OptIn},                          // id
		{"stop sending me ads please", NoKeyword}, // not the whole text
		{"please stop", NoKeyword},
		{"stopper", NoKeyword},
		{"starting soon?", NoKeyword},
		{"", NoKeyword},
		{"!!!", NoKeyword},
		{"Thanks!", NoKeyword},
	}
	for _, c := range cases {
		if got := k.Match(c.text); got != c.want {
			t.Errorf("Match(%q) = %d, want %d", c.text, got, c.want)
		}
	}
}

func TestConfiguredKeywordsReplaceTheDefaults(t *testing.T) {
	k, err := NewKeywords([]string{"Basta", "no more"}, []string{"Again"})
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string]Verdict{"basta!": OptOut, "No more.": OptOut, "again": OptIn, "STOP": NoKeyword, "start": NoKeyword} {
		if got := k.Match(text); got != want {
			t.Errorf("Match(%q) = %d, want %d", text, got, want)
		}
	}
	if _, err := NewKeywords([]string{"stop"}, []string{"Stop!"}); err == nil {
		t.Error("a keyword in both lists was accepted")
	}
	if _, err := NewKeywords([]string{"..."}, nil); err == nil {
		t.Error("a keyword without letters was accepted")
	}
}

func TestParseFrequencyCap(t *testing.T) {
	good := map[string]string{"1/24h": "1/1d", "3/7d": "3/7d", "2/90m": "2/1h30m0s", "off": "off", "": "off"}
	for in, want := range good {
		c, err := ParseFrequencyCap(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseFrequencyCap(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"1", "0/24h", "-1/24h", "x/24h", "1/", "1/fortnight", "1/30s", "1/400d", "1/7days"} {
		if _, err := ParseFrequencyCap(in); err == nil {
			t.Errorf("ParseFrequencyCap(%q) was accepted", in)
		}
	}
}
