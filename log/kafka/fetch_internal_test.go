package kafka

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestFetchFailedNamesARealPartitionOnly: a partition's failed fetch is
// logged with its topic and partition; the client's or the group's, which
// come with no topic, without either, rather than as partition 0 of "".
func TestFetchFailedNamesARealPartitionOnly(t *testing.T) {
	var out bytes.Buffer
	l := &Log{log: slog.New(slog.NewJSONHandler(&out, nil))}
	l.fetchFailed("", 0, errors.New("unable to join the group"))
	if s := out.String(); strings.Contains(s, `"topic"`) || strings.Contains(s, `"partition"`) {
		t.Errorf("a group's failure is logged with a topic or a partition: %s", s)
	}
	out.Reset()
	l.fetchFailed("app.order.commands", 2, errors.New("not the leader"))
	if s := out.String(); !strings.Contains(s, `"topic":"app.order.commands","partition":2`) {
		t.Errorf("a partition's failure is logged without its topic and partition: %s", s)
	}
}
