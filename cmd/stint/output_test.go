package main

import (
	"bytes"
	"testing"
)

// TestTablesShowTextAsItIs checks that a table cell cannot realign its
// table or reorder what it shows: controls, format characters and line
// separators are written as escapes; other text is left as it is.
func TestTablesShowTextAsItIs(t *testing.T) {
	for in, want := range map[string]string{
		"repo:1":                 "repo:1",
		"dépôt ἀρχή 日本語 ✓":       "dépôt ἀρχή 日本語 ✓",
		"repo:1\u202egnp.exe":    `repo:1\u202egnp.exe`,
		"a\tb\nc":                `a\u0009b\u000ac`,
		"x\u2028y\u2029z\u200bw": `x\u2028y\u2029z\u200bw`,
		"\ufeffbom\u2066":        `\ufeffbom\u2066`,
	} {
		if got := cellText(in); got != want {
			t.Errorf("cellText(%q) = %q, want %q", in, got, want)
		}
	}
	var out bytes.Buffer
	tw := newTable(&out, "A", "B")
	row(tw, "x\u202ey", "")
	tw.Flush() //nolint:errcheck
	if got, want := out.String(), "A         B\nx\\u202ey  -\n"; got != want {
		t.Errorf("table:\n%q, want\n%q", got, want)
	}
}
