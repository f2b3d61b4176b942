package sqlite

import (
	"database/sql/driver"
	"encoding/json"

	msqlite "modernc.org/sqlite"

	"github.com/stint-dev/stint/internal/versions"
)

// The SQL function stint_versions_ok(required, provided) is the version
// rule of the claims: both arguments are JSON objects of component names
// and versions, and it returns 1 when provided satisfies required, as
// versions.Satisfies decides (the same function, so the engines cannot
// disagree with the package), and 0 otherwise, also for arguments that do
// not decode. NULL provides nothing.
//
// modernc.org/sqlite registers functions on its driver, for every
// connection opened after: this runs before any Open of this package.
func init() {
	msqlite.MustRegisterDeterministicScalarFunction("stint_versions_ok", 2, versionsOK)
}

func versionsOK(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	required, ok := decodeVersions(args[0])
	if !ok {
		return int64(0), nil
	}
	if len(required) == 0 {
		return int64(1), nil
	}
	provided, ok := decodeVersions(args[1])
	if !ok {
		return int64(0), nil
	}
	if versions.Satisfies(required, provided) {
		return int64(1), nil
	}
	return int64(0), nil
}

// decodeVersions reads a JSON object of versions from a SQL value: TEXT
// (what Stint stores and binds), a BLOB, or NULL for none.
func decodeVersions(v driver.Value) (map[string]string, bool) {
	var text []byte
	switch v := v.(type) {
	case nil:
		return nil, true
	case string:
		if v == "{}" {
			return nil, true
		}
		text = []byte(v)
	case []byte:
		text = v
	default:
		return nil, false
	}
	var m map[string]string
	if err := json.Unmarshal(text, &m); err != nil {
		return nil, false
	}
	return m, true
}
