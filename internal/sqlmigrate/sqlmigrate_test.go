package sqlmigrate_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stint-dev/stint/internal/sqlmigrate"
)

func TestLoad(t *testing.T) {
	files := fstest.MapFS{
		"m/0010_ten.sql":  {Data: []byte("-- ten")},
		"m/0002_two.sql":  {Data: []byte("-- two")},
		"m/0001_init.sql": {Data: []byte("-- one")},
	}
	got, err := sqlmigrate.Load(files, "m")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range got {
		names = append(names, m.Name)
	}
	if strings.Join(names, " ") != "0001_init.sql 0002_two.sql 0010_ten.sql" || got[2].Version != 10 || got[0].SQL != "-- one" {
		t.Fatalf("loaded %+v", got)
	}

	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"no underscore", fstest.MapFS{"m/0001.sql": {}}, "NNNN_what.sql"},
		{"no number", fstest.MapFS{"m/first_init.sql": {}}, "version number"},
		{"version 0", fstest.MapFS{"m/0000_zero.sql": {}}, "version number"},
		{"same version", fstest.MapFS{"m/0001_a.sql": {}, "m/01_b.sql": {}}, "the same version 1"},
		{"no directory", fstest.MapFS{}, "m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sqlmigrate.Load(tc.files, "m"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v; want an error with %q", err, tc.want)
			}
		})
	}
}
