package api

import (
	"compress/gzip"
	"net/http"

	"github.com/klauspost/compress/gzhttp"
)

// compressed wraps the handlers of large JSON answers (the lists and the
// OpenAPI document) so that a client sending Accept-Encoding: gzip gets
// them compressed: the JSON of tasks repeats its field names and
// compresses well. Answers under gzhttp.DefaultMinSize (1 KiB) are sent
// as they are, since compressing them costs more than it saves; gzhttp
// also sets Vary:
// Accept-Encoding. The level is the fastest: the API node's CPU is the
// scarce part, not the network. The event stream is never wrapped (each
// event must leave at once).
func compressed() func(http.Handler) http.HandlerFunc {
	wrap, err := gzhttp.NewWrapper(
		gzhttp.CompressionLevel(gzip.BestSpeed),
		gzhttp.ContentTypes([]string{"application/json"}),
	)
	if err != nil { // only for options out of range, which these are not
		panic("api: gzip options: " + err.Error())
	}
	return wrap
}
