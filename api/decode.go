package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// decodeBody reads a JSON body into v, strictly: member names match the
// fields' names exactly (no case folding), a name given twice in any object
// is refused (args and versions included), and so are unknown fields,
// invalid UTF-8, trailing data and bodies over the limit. It answers the
// error itself, naming the field at fault, and reports whether to go on.
//
// encoding/json matches names case-insensitively and keeps the last of
// duplicates, so {"NAME": ...} or {"name": "x", "name": "stint.noop"} would
// mean something other than what a reader of the body sees; the JSON v2
// decoder (github.com/go-json-experiment/json) refuses both by default.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", mbe.Limit)
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "the body could not be read: %v", err)
		return false
	case len(bytes.TrimSpace(raw)) == 0:
		writeError(w, http.StatusBadRequest, "the body is empty; expected a JSON object")
		return false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw)) // duplicate names and invalid UTF-8 refused
	err = json.UnmarshalDecode(dec, v, json.RejectUnknownMembers(true))
	if err == nil {
		if _, terr := dec.ReadToken(); terr != io.EOF {
			writeError(w, http.StatusBadRequest, "the body holds more than one JSON value")
			return false
		}
		return true
	}
	writeError(w, http.StatusBadRequest, "%s", bodyProblem(err))
	return false
}

// bodyProblem says what is wrong with a body that did not decode, starting
// with the field at fault when there is one.
func bodyProblem(err error) string {
	var (
		se *json.SemanticError
		sy *jsontext.SyntacticError
	)
	switch {
	case errors.As(err, &sy) && errors.Is(sy.Err, jsontext.ErrDuplicateName):
		return fieldPath(sy.JSONPointer) + ": given twice; give each field once"
	case errors.As(err, &sy) && sy.JSONPointer != "":
		return fmt.Sprintf("%s: the body is not valid JSON: %v (at byte %d)", fieldPath(sy.JSONPointer), sy.Err, sy.ByteOffset)
	case errors.As(err, &sy):
		return fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", sy.Err, sy.ByteOffset)
	case errors.As(err, &se) && errors.Is(se.Err, json.ErrUnknownName):
		return fieldPath(se.JSONPointer) + ": unknown field"
	case errors.As(err, &se) && se.JSONPointer == "":
		return "the body must be a JSON object, not a JSON " + kindName(se.JSONKind)
	case errors.As(err, &se) && se.GoType != nil && se.Err == nil:
		return fmt.Sprintf("%s: expected %s, got a JSON %s", fieldPath(se.JSONPointer), jsonKind(se.GoType.Kind().String()), kindName(se.JSONKind))
	case errors.As(err, &se) && se.Err != nil:
		return fmt.Sprintf("%s: %v", fieldPath(se.JSONPointer), se.Err)
	case errors.As(err, &se):
		return fieldPath(se.JSONPointer) + ": cannot be decoded"
	}
	return fmt.Sprintf("the body is not valid JSON: %v", err)
}

// fieldPath spells a JSON pointer as the API's details name fields:
// /tasks/3/name is tasks[3].name, /versions/a~1b is versions.a/b.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.ParseUint(tok, 10, 32); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

// kindName names a JSON kind in a message.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}
