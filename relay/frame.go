package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// The SSE event names of the frames.
const (
	KindOutcome = "outcome" // the data is an OutcomeFrame
	KindEvent   = "event"   // the data is a plait.Event
)

// OutcomeFrame is the data of an "outcome" frame: what became of one
// command, with the command's own data, so that a user interface can reopen
// the screen of a rejected command with what the user had typed.
//
// Its fields are the command's (see plait.Command), and the outcome's
// Status, Errors and Position.
type OutcomeFrame struct {
	ID            string             `json:"id"`
	Type          string             `json:"type"`
	AggregateID   string             `json:"aggregateId"`
	Name          string             `json:"name"`
	Status        plait.Status       `json:"status"`
	Errors        []plait.FieldError `json:"errors,omitempty"`
	CorrelationID string             `json:"correlationId"`
	CausationID   string             `json:"causationId,omitempty"`
	Data          json.RawMessage    `json:"data"`
	ExpectedSeq   *int64             `json:"expectedSeq,omitempty"`
	User          string             `json:"user"`
	At            time.Time          `json:"at"`
	Position      int64              `json:"position"`
}

// NewOutcomeFrame makes the frame data of an outcome at position pos.
func NewOutcomeFrame(out *plait.Outcome, pos int64) OutcomeFrame {
	c := &out.Command
	data := c.Data
	if len(data) == 0 {
		data = nil // encodes as null
	}
	return OutcomeFrame{
		ID: c.ID, Type: c.Type, AggregateID: c.AggregateID, Name: c.Name,
		Status: out.Status, Errors: out.Errors,
		CorrelationID: c.CorrelationID, CausationID: c.CausationID,
		Data: data, ExpectedSeq: c.ExpectedSeq, User: c.User, At: c.At,
		Position: pos,
	}
}

// ItemType is the aggregate type an item concerns: the event's, or the
// type of the outcome's command.
func ItemType(it engine.Item) string {
	switch {
	case it.Event != nil:
		return it.Event.Type
	case it.Outcome != nil:
		return it.Outcome.Command.Type
	}
	return ""
}

// AppendFrame appends the SSE frame of one feed item to dst:
//
//	id: <position>
//	event: outcome | event
//	data: <JSON>
//
// followed by a blank line. The JSON is on one line.
func AppendFrame(dst []byte, it engine.Item) ([]byte, error) {
	var kind string
	var data []byte
	var err error
	switch {
	case it.Event != nil:
		kind = KindEvent
		ev := *it.Event
		ev.Position = it.Position
		data, err = json.Marshal(ev)
	case it.Outcome != nil:
		kind = KindOutcome
		data, err = json.Marshal(NewOutcomeFrame(it.Outcome, it.Position))
	default:
		return dst, fmt.Errorf("feed item %d is neither an event nor an outcome", it.Position)
	}
	if err != nil {
		return dst, err
	}
	dst = append(dst, "id: "...)
	dst = strconv.AppendInt(dst, it.Position, 10)
	dst = append(dst, "\nevent: "...)
	dst = append(dst, kind...)
	dst = append(dst, '\n')
	// encoding/json writes no raw newline, but a data field must not hold
	// one: split defensively rather than corrupt the stream.
	for {
		line, rest, found := bytes.Cut(data, []byte{'\n'})
		dst = append(dst, "data: "...)
		dst = append(dst, line...)
		dst = append(dst, '\n')
		if !found {
			break
		}
		data = rest
	}
	return append(dst, '\n'), nil
}
