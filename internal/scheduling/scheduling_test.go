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
	if Runnable(d, []Resources{cd}, nil) {
		t.Error("a task on D overtook an earlier task on C+D")
	}
	if !Runnable(Resources{}, []Resources{cd, d}, nil) {
		t.Error("a task with no resources waited")
	}
	if !Runnable(Resources{Shared: []string{"D"}}, []Resources{{Shared: []string{"D"}}}, nil) {
		t.Error("two readers did not run together")
	}
}

func TestRunnableWithCapacities(t *testing.T) {
	sh := func(r ...string) Resources { return Resources{Shared: r} }
	ex := func(r ...string) Resources { return Resources{Exclusive: r} }
	caps := Capacities{"R": 2, "S": 1}
	cases := []struct {
		name    string
		task    Resources
		earlier []Resources
		want    bool
	}{
		{"first shared holder", sh("R"), nil, true},
		{"second within capacity 2", sh("R"), []Resources{sh("R")}, true},
		{"third at capacity 2", sh("R"), []Resources{sh("R"), sh("R")}, false},
		{"capacity 1 holds one", sh("S"), []Resources{sh("S")}, false},
		{"earlier holders of other resources do not count", sh("R"), []Resources{sh("S"), sh("T"), ex("U")}, true},
		{"exclusive waits for one shared holder", ex("R"), []Resources{sh("R")}, false},
		{"exclusive alone", ex("R"), nil, true},
		{"shared behind exclusive", sh("R"), []Resources{ex("R")}, false},
		{"unbounded resource", sh("T"), []Resources{sh("T"), sh("T"), sh("T")}, true},
		{"full on one of two", sh("R", "T"), []Resources{sh("R"), sh("R", "T")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Runnable(tc.task, tc.earlier, caps); got != tc.want {
				t.Errorf("Runnable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFits(t *testing.T) {
	cases := []struct {
		holders, exclusive, capacity int
		want                         bool
	}{
		{0, 0, 0, true},
		{5, 0, 0, true},
		{1, 1, 0, true},
		{2, 1, 0, false},
		{3, 0, 3, true},
		{4, 0, 3, false},
		{1, 1, 3, true},
		{2, 1, 3, false},
	}
	for _, tc := range cases {
		if got := Fits(tc.holders, tc.exclusive, tc.capacity); got != tc.want {
			t.Errorf("Fits(%d, %d, %d) = %v, want %v", tc.holders, tc.exclusive, tc.capacity, got, tc.want)
		}
	}
}
