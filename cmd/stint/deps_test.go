package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryDoesNotLinkTesting: the shipped binary carries no test
// helpers. `stint bench` makes its scratch databases through
// internal/scratchdb, not internal/pgtest, which imports package testing
// (and with it its flags and its share of the binary).
func TestBinaryDoesNotLinkTesting(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" || strings.HasSuffix(pkg, "/internal/pgtest") || strings.HasPrefix(pkg, "testing/") {
			t.Errorf("cmd/stint links %s", pkg)
		}
	}
}
