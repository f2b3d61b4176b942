package scheduling

import "testing"

func TestConflicts(t *testing.T) {
	ex := func(r ...string) Resources { return Resources{Exclusive: r} }
	sh := func(r ...string) Resources { return Resources{Shared: r} }
	cases := []struct {
		name string
		a, b Resources
		want bool
	}{
		{"exclusive vs exclusive", ex("r"), ex("r"), true},
		{"exclusive vs shared", ex("r"), sh("r"), true},
		{"shared vs exclusive", sh("r"), ex("r"), true},
		{"shared vs shared", sh("r"), sh("r"), false},
		{"different resources", ex("r"), ex("s"), false},
		{"no resources", Resources{}, ex("r"), false},
		{"one of several in common", Resources{Exclusive: []string{"a"}, Shared: []string{"b"}}, Resources{Shared: []string{"c", "a"}}, true},
		{"shared in common only", Resources{Exclusive: []string{"a"}, Shared: []string{"b"}}, Resources{Exclusive: []string{"c"}, Shared: []string{"b"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Conflicts(tc.a, tc.b); got != tc.want {
				t.Errorf("Conflicts(a, b) = %v, want %v", got, tc.want)
			}
			if got := Conflicts(tc.b, tc.a); got != tc.want {
				t.Errorf("Conflicts(b, a) = %v, want %v (not symmetric)", got, tc.want)
			}
		})
	}
}

func TestRunnable(t *testing.T) {
	cd := Resources{Exclusive: []string{"C", "D"}}
	d := Resources{Exclusive: []string{"D"}}
	if Runnable(d, []Resources{cd}) {
		t.Error("a task on D overtook an earlier task on C+D")
	}
	if !Runnable(Resources{}, []Resources{cd, d}) {
		t.Error("a task with no resources waited")
	}
	if !Runnable(Resources{Shared: []string{"D"}}, []Resources{{Shared: []string{"D"}}}) {
		t.Error("two readers did not run together")
	}
}
