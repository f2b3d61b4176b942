package faultproxy

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/google/uuid"
)

// watchType is the toxiproxy type of the watch toxic.
const watchType = "stint_faultproxy_watch"

func init() {
	toxics.Register(watchType, new(watchToxic))
}

// Row is the fields of one data row of a server's reply (a DataRow
// message), each in the format the client asked for: binary or text; nil
// for NULL.
type Row [][]byte

// Has reports whether one of the row's fields is exactly b.
func (r Row) Has(b []byte) bool {
	for _, f := range r {
		if f != nil && bytes.Equal(f, b) {
			return true
		}
	}
	return false
}

// HasUUID reports whether one of the row's fields is id, in the binary
// format (16 bytes) or the text one.
func (r Row) HasUUID(id uuid.UUID) bool {
	return r.Has(id[:]) || r.Has([]byte(id.String()))
}

// Contains reports whether one of the row's fields contains b, such as a
// marker string inside a JSON or array value.
func (r Row) Contains(b []byte) bool {
	for _, f := range r {
		if bytes.Contains(f, b) {
			return true
		}
	}
	return false
}

// Match chooses the reply a rule breaks, by one of its data rows. It is
// called from the proxy's goroutines, once per data row the server sends
// while the rule is armed, and must be quick and safe for concurrent use.
//
// Columns tell replies apart: a task row of Stint's store has some twenty
// columns, the reply of stint_finish one (the ids it finished), a
// heartbeat's two or three.
type Match func(Row) bool

type action int

const (
	actionCut action = iota
	actionSilence
)

// rule is an armed CutAfterReply or SilenceAfterReply.
type rule struct {
	match  Match
	action action
	fired  chan Fault
}

// conn is one connection through the proxy: its two links share it.
type conn struct {
	// dead: the connection lost bytes in a silence, or a rule silenced
	// it; it carries nothing more.
	dead atomic.Bool
}

// link is the state of one direction of a connection, kept on its toxic
// stub across interruptions (toxiproxy interrupts a toxic when another is
// added or removed behind it).
type link struct {
	conn *conn
	down bool // server to client

	// The reply parser (downstream only): it follows the message
	// boundaries of the whole stream, and keeps the bodies it must read.
	started  bool    // the first byte was seen
	opaque   bool    // encrypted, or not the protocol: nothing to read
	hdr      [5]byte // the message header being read
	nhdr     int
	typ      byte
	left     int    // bytes of the current message's body still to come
	keep     bool   // the body is kept, to be read
	body     []byte // the body kept so far
	armed    *rule  // a row matched: withhold everything until ReadyForQuery
	finished bool   // a rule closed the link
}

// watchToxic forwards data unchanged but during a silence, follows the
// server's replies for the armed rules, and applies them. One instance
// serves all links of one direction of a proxy.
type watchToxic struct {
	// Down is true for the instance on the server-to-client links.
	Down bool `json:"down"`
	ctl  *control
}

// NewState implements toxics.StatefulToxic. Toxiproxy starts the
// upstream link of each connection and then its downstream link, one
// connection at a time, so the downstream state pairs with the last
// upstream one.
func (w *watchToxic) NewState() any {
	if w.Down {
		return &link{conn: w.ctl.pairDown(), down: true}
	}
	return &link{conn: w.ctl.newConn()}
}

// Pipe implements toxics.Toxic.
func (w *watchToxic) Pipe(stub *toxics.ToxicStub) {
	l := stub.State.(*link)
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			switch {
			case c == nil && l.finished:
				return
			case c == nil:
				w.ctl.ended(l.conn)
				if l.conn.dead.Load() {
					// A dead connection does not tell the other side
					// that this one closed: hold it until the proxy
					// closes.
					select {
					case <-w.ctl.done:
					case <-stub.Interrupt:
						return
					}
				}
				stub.Close()
				return
			case l.finished:
				continue // closed by a rule: drain, so that the reader is not blocked
			}
			if w.ctl.silent.Load() {
				l.conn.dead.Store(true)
			}
			withhold := false
			if l.down && !l.opaque {
				withhold = w.read(stub, l, c.Data)
			}
			if withhold || l.finished || l.conn.dead.Load() {
				continue // withheld, or black-holed
			}
			stub.Output <- c
		}
	}
}

// read follows the server's messages in data and applies the armed
// rules. It returns true when data must be withheld.
func (w *watchToxic) read(stub *toxics.ToxicStub, l *link, data []byte) (withhold bool) {
	if !l.started && len(data) > 0 {
		l.started = true
		switch data[0] {
		case 'S': // SSL accepted: the rest is encrypted
			l.opaque = true
			return false
		case 'N': // SSL refused: a single byte, then messages
			data = data[1:]
		}
	}
	withhold = l.armed != nil
	for len(data) > 0 {
		if l.nhdr < len(l.hdr) {
			k := copy(l.hdr[l.nhdr:], data)
			l.nhdr += k
			data = data[k:]
			if l.nhdr < len(l.hdr) {
				break
			}
			l.typ = l.hdr[0]
			l.left = int(binary.BigEndian.Uint32(l.hdr[1:])) - 4
			if l.left < 0 {
				l.opaque = true // not the protocol this parser knows
				return withhold
			}
			l.keep = (l.typ == 'D' && l.armed == nil && w.ctl.armed.Load() > 0) || (l.typ == 'Z' && l.armed != nil)
			l.body = l.body[:0]
		}
		k := min(l.left, len(data))
		if l.keep {
			l.body = append(l.body, data[:k]...)
		}
		l.left -= k
		data = data[k:]
		if l.left > 0 {
			break
		}
		l.nhdr = 0 // the message is complete
		if !l.keep {
			continue
		}
		switch {
		case l.typ == 'D':
			if row, ok := parseRow(l.body); ok {
				if r := w.ctl.take(row); r != nil {
					l.armed = r
					withhold = true
					if r.action == actionSilence {
						l.conn.dead.Store(true)
					}
				}
			}
		case l.typ == 'Z' && len(l.body) == 1:
			r := l.armed
			l.armed = nil
			r.fired <- Fault{At: time.Now(), TxStatus: l.body[0]}
			if r.action == actionCut {
				l.finished = true
				stub.Close()
				return true
			}
		}
	}
	return withhold
}

// parseRow decodes the body of a DataRow message.
func parseRow(body []byte) (Row, bool) {
	if len(body) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	row := make(Row, 0, n)
	for range n {
		if len(body) < 4 {
			return nil, false
		}
		size := int(int32(binary.BigEndian.Uint32(body)))
		body = body[4:]
		if size < 0 {
			row = append(row, nil)
			continue
		}
		if len(body) < size {
			return nil, false
		}
		row = append(row, body[:size])
		body = body[size:]
	}
	return row, true
}
