package kafka

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/plaithq/plait"
)

// ReactorTopics lists the events topics the application's reactors
// consume: those of every aggregate type a reactor subscribes to, whether
// the type is the application's own or another application's that shares
// the topic prefix.
func (l *Log) ReactorTopics() []string {
	seen := map[string]bool{}
	var ts []string
	for _, r := range l.app.Reactors {
		for _, typ := range r.Types() {
			if t := l.EventsTopic(typ); !seen[t] {
				seen[t] = true
				ts = append(ts, t)
			}
		}
	}
	sort.Strings(ts)
	return ts
}

// decodeEvent reads an events topic's record back into the event the
// publisher made it from (see eventRecord and the package doc).
func decodeEvent(rec *kgo.Record) (plait.Event, error) {
	h := map[string]string{}
	for _, kv := range rec.Headers {
		h[kv.Key] = string(kv.Value)
	}
	where := fmt.Sprintf("%s/%d@%d", rec.Topic, rec.Partition, rec.Offset)
	typ, name, ok := strings.Cut(h["ce_type"], ".")
	if h["ce_id"] == "" || !ok || len(rec.Key) == 0 {
		return plait.Event{}, fmt.Errorf("decode %s: not an event (no ce_id, ce_type type.name or key)", where)
	}
	ev := plait.Event{
		ID: h["ce_id"], Type: typ, AggregateID: string(rec.Key), Name: name,
		CorrelationID: h["plait_correlationid"], CausationID: h["plait_causationid"], User: h["plait_user"],
		Data: json.RawMessage(rec.Value),
	}
	var err error
	if ev.Seq, err = strconv.ParseInt(h["plait_seq"], 10, 64); err != nil || ev.Seq < 1 {
		return ev, fmt.Errorf("decode %s: plait_seq %q: want a number from 1", where, h["plait_seq"])
	}
	if p := h["plait_position"]; p != "" {
		if ev.Position, err = strconv.ParseInt(p, 10, 64); err != nil {
			return ev, fmt.Errorf("decode %s: plait_position %q: %w", where, p, err)
		}
	}
	if v := h["plait_version"]; v != "" {
		if ev.Version, err = strconv.Atoi(v); err != nil {
			return ev, fmt.Errorf("decode %s: plait_version %q: %w", where, v, err)
		}
	}
	if t := h["ce_time"]; t != "" {
		if ev.At, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return ev, fmt.Errorf("decode %s: ce_time %q: %w", where, t, err)
		}
	}
	if lin := h["plait_lineage"]; lin != "" {
		if err := json.Unmarshal([]byte(lin), &ev.Lineage); err != nil {
			return ev, fmt.Errorf("decode %s: plait_lineage: %w", where, err)
		}
	}
	return ev, nil
}
