// Package versions compares the versions of components that workers
// provide with the minimum versions that tasks require (DESIGN §1).
//
// A version is one to four dot-separated decimal numbers without leading
// signs: "2", "2.0", "1.4.10", "3.0.0.1". Missing components are zero, so
// "2" and "2.0.0" are equal. A requirement {"myplugin": "2.0"} is satisfied
// by a worker that provides myplugin at version 2.0 or later; a worker that
// does not provide myplugin does not satisfy it.
//
// The PostgreSQL engine implements the same rule in SQL (function
// stint_versions_ok) and the SQLite engine calls Satisfies; the conformance
// suite checks that they agree.
package versions

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxParts is how many dot-separated numbers a version may have.
const MaxParts = 4

// maxNumber bounds each number, so that every engine compares them as
// integers without overflow.
const maxNumber = 999_999_999

// Version is a parsed version, its missing parts zero.
type Version [MaxParts]int

// Parse reads a version such as "1.4.0".
func Parse(s string) (Version, error) {
	var v Version
	parts := strings.Split(s, ".")
	if s == "" || len(parts) > MaxParts {
		return v, fmt.Errorf("%q is not a version: want 1 to %d dot-separated numbers, such as 1.4.0", s, MaxParts)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || p == "" || p[0] < '0' || p[0] > '9' || n > maxNumber {
			return v, fmt.Errorf("%q is not a version: want 1 to %d dot-separated numbers, such as 1.4.0", s, MaxParts)
		}
		v[i] = n
	}
	return v, nil
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
func (v Version) Compare(w Version) int {
	for i := range v {
		switch {
		case v[i] < w[i]:
			return -1
		case v[i] > w[i]:
			return 1
		}
	}
	return 0
}

// Validate checks a map of component versions (a requirement, or what a
// worker provides): non-empty names and valid versions. The error names
// the component.
func Validate(m map[string]string) error {
	for name, s := range m {
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("a component name is empty")
		}
		if _, err := Parse(s); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// Satisfies reports whether provided meets every minimum in required. A
// version that does not parse never satisfies, nor is satisfied.
func Satisfies(required, provided map[string]string) bool {
	for name, min := range required {
		have, ok := provided[name]
		if !ok {
			return false
		}
		want, err := Parse(min)
		if err != nil {
			return false
		}
		got, err := Parse(have)
		if err != nil || got.Compare(want) < 0 {
			return false
		}
	}
	return true
}

// Unmet returns the requirements of required that provided does not meet,
// as "name>=version" strings sorted by name; nil when it satisfies them.
func Unmet(required, provided map[string]string) []string {
	var out []string
	for name, min := range required {
		if !Satisfies(map[string]string{name: min}, provided) {
			out = append(out, name+">="+min)
		}
	}
	slices.Sort(out)
	return out
}
