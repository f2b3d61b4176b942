package versions_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stint-dev/stint/internal/versions"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want versions.Version
		ok   bool
	}{
		{"2", versions.Version{2}, true},
		{"2.0", versions.Version{2}, true},
		{"1.4.10", versions.Version{1, 4, 10}, true},
		{"3.0.0.1", versions.Version{3, 0, 0, 1}, true},
		{"007.1", versions.Version{7, 1}, true},
		{"", versions.Version{}, false},
		{"1.", versions.Version{}, false},
		{".1", versions.Version{}, false},
		{"1..2", versions.Version{}, false},
		{"1.2.3.4.5", versions.Version{}, false},
		{"v1.2", versions.Version{}, false},
		{"1.2-beta", versions.Version{}, false},
		{"+1", versions.Version{}, false},
		{"-1", versions.Version{}, false},
		{" 1", versions.Version{}, false},
		{"1000000000", versions.Version{}, false},
	} {
		got, err := versions.Parse(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// Cases are shared with the engines' conformance test through
// SatisfiesCases.
func TestSatisfies(t *testing.T) {
	for _, c := range versions.SatisfiesCases {
		if got := versions.Satisfies(c.Required, c.Provided); got != c.Want {
			t.Errorf("Satisfies(%v, %v) = %v, want %v", c.Required, c.Provided, got, c.Want)
		}
	}
}

func TestUnmet(t *testing.T) {
	got := versions.Unmet(map[string]string{"b": "2.0", "a": "1", "c": "1"}, map[string]string{"a": "1.0", "b": "1.9"})
	if want := []string{"b>=2.0", "c>=1"}; !slices.Equal(got, want) {
		t.Fatalf("Unmet = %v, want %v", got, want)
	}
	if got := versions.Unmet(nil, nil); got != nil {
		t.Fatalf("Unmet of nothing = %v", got)
	}
}

func TestValidate(t *testing.T) {
	if err := versions.Validate(map[string]string{"myplugin": "2.0", "core": "3"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]string{{"": "1"}, {"myplugin": "two"}} {
		if err := versions.Validate(m); err == nil {
			t.Errorf("Validate(%v): no error", m)
		}
	}
}

func Example() {
	required := map[string]string{"myplugin": "2.0"}
	for _, have := range []string{"1.9", "2", "2.1"} {
		fmt.Println(have, versions.Satisfies(required, map[string]string{"myplugin": have}))
	}
	// Output:
	// 1.9 false
	// 2 true
	// 2.1 true
}
