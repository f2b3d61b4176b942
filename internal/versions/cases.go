package versions

// SatisfiesCase is one case of the rule: whether Provided satisfies
// Required.
type SatisfiesCase struct {
	Required, Provided map[string]string
	Want               bool
}

// SatisfiesCases are the cases every implementation of the rule must agree
// on: this package's tests and the engines' conformance suite use them.
var SatisfiesCases = []SatisfiesCase{
	{nil, nil, true},
	{map[string]string{}, map[string]string{"a": "1"}, true},
	{map[string]string{"myplugin": "2.0"}, nil, false},
	{map[string]string{"myplugin": "2.0"}, map[string]string{"other": "9"}, false},
	{map[string]string{"myplugin": "2.0"}, map[string]string{"myplugin": "1.9"}, false},
	{map[string]string{"myplugin": "2.0"}, map[string]string{"myplugin": "2"}, true},
	{map[string]string{"myplugin": "2.0"}, map[string]string{"myplugin": "2.0.0.0"}, true},
	{map[string]string{"myplugin": "2.0"}, map[string]string{"myplugin": "2.1"}, true},
	{map[string]string{"myplugin": "2.0"}, map[string]string{"myplugin": "10.0"}, true},
	{map[string]string{"myplugin": "1.10"}, map[string]string{"myplugin": "1.9"}, false},
	{map[string]string{"myplugin": "1.9"}, map[string]string{"myplugin": "1.10"}, true},
	{map[string]string{"a": "1.4.0"}, map[string]string{"a": "1.4"}, true},
	{map[string]string{"a": "1.4.1"}, map[string]string{"a": "1.4"}, false},
	{map[string]string{"a": "1.0.0.1"}, map[string]string{"a": "1.0.0.2"}, true},
	{map[string]string{"a": "1", "b": "2"}, map[string]string{"a": "1", "b": "1"}, false},
	{map[string]string{"a": "1", "b": "2"}, map[string]string{"a": "3", "b": "2.5", "c": "0"}, true},
	{map[string]string{"a": "1"}, map[string]string{"a": "not-a-version"}, false},
}
