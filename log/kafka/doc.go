// Package kafka is Plait's scaled-out log on Kafka, through franz-go: the
// command log the engine consumes (engine.CommandLog) and the publisher
// that puts every committed event and outcome on Kafka for any consumer.
//
// With PostgreSQL (store/postgres) as the store it makes an application
// scale out: any number of instances of one application share its consumer
// group, each decides the commands of the partitions it is assigned, and
// each commits the outcomes and the consumed offsets in one PostgreSQL
// transaction, so every command is decided exactly once whichever instance
// crashes or leaves. Kafka transactions are not used: the PostgreSQL
// transaction that holds the outcomes also holds the offsets, and it is the
// only truth about how far each partition was consumed.
//
//	log, err := kafka.New(ctx, app, kafka.Options{Brokers: brokers, Offsets: store})
//	e, err := engine.New(app, store, engine.Options{CommandLog: log})
//
// # Topics
//
// With the prefix P (Options.Prefix, by default the application's name):
//
//	P.<type>.commands   the commands of aggregate type <type>, views included
//	                    (reactors send them commands too); consumed by the group
//	P.<type>.events     the events of aggregate type <type>, published
//	P.outcomes          every command's outcome, published
//
// Every record is keyed by its aggregate id, so one instance's commands,
// events and outcomes each stay in order on one partition. New creates the
// topics that are missing with Options.Partitions partitions,
// Options.Replication replicas, Options.Retention as retention.ms and
// Options.MaxRecordBytes (8 MiB) as max.message.bytes.
//
// # Commands
//
// A command record's value is the command's JSON as in the HTTP API
// (plait.Command), its personal fields sealed (plait.Personal); its headers
// repeat the envelope's ids: plait_id, plait_type ("<type>.<name>"),
// plait_correlationid and, when set, plait_causationid; plait_sender holds
// who sent it, {"id":…,"roles":[…]}, for the access rules of the instance
// that decides it (none: one of the engine's own commands). Append produces with acks=all and returns once the
// record is acknowledged: that is when the HTTP API answers 202. When the
// engine traces (engine.Options.TracerProvider), the W3C trace context of
// the span the command was submitted under goes in the traceparent and
// tracestate headers, and the instance that decides the command traces it
// as that span's child; with tracing off no such header is written.
//
// # Consuming
//
// Consume joins the consumer group Options.Group (by default the
// application's name). When partitions are assigned it starts each at the
// offset the store committed (Options.Offsets, the store's Offset); Kafka's
// committed offsets are neither read nor written. Each partition has a
// goroutine that hands the engine one batch at a time, in offset order, so
// partitions proceed in parallel and one instance's commands are decided in
// order. On revocation or loss the partition's queued records are dropped
// and the rebalance waits for its batch in flight (BlockRebalanceOnPoll
// keeps every polled record in one place until the rebalance may run). When
// the engine fails a batch, the partition backs off, reads the store's
// offset again and resumes from there: records the store has are skipped,
// the others handed again. A queue that grows long pauses its partition's
// fetching.
//
// # Reactors
//
// ConsumeWithEvents (engine.Options.ReactFromLog, as plait serve --kafka
// runs) also subscribes the group to the events topics of every type the
// application's reactors subscribe to (ReactorTopics), its own types' and
// those of another application sharing the prefix. Each partition of those
// is consumed by one instance, which runs the reactors on its events,
// awaits the outcomes of the commands they send and then commits the
// partition's offset to the store (the same table as the commands'). A
// batch of events in flight is abandoned when its partition is revoked:
// its next owner hands it again, and the reactions' derived command ids
// make that harmless. The events reach those topics through the Publisher
// of the application that owns each type.
//
// Undecided tells whether a command is in a commands topic past the offset
// the store committed, so that any instance can answer that a command sent
// to another is pending. Inspect reports each partition the group
// consumes: the offset handled, the end offset, the lag and the owner.
//
// # Events and outcomes on Kafka
//
// Publisher reads the store's feed from its checkpoint ("publisher:kafka"),
// produces every event and outcome with acks=all, and moves the checkpoint
// only once the page is acknowledged. A crash in between republishes the
// page with the same ids, which a consumer recognises (ce_id). Only one
// instance publishes at a time: the holder of a lease (with PostgreSQL, an
// advisory lock on a connection of its own); the others stand by and take
// over when it is released or its session ends.
//
// Events follow CloudEvents 1.0 in Kafka's binary content mode, so any Kafka
// consumer reads them without Plait:
//
//	key                  the aggregate id
//	value                the event's data, JSON
//	ce_specversion       1.0
//	ce_id                the event id (<command id>.<n>): the same on a republish
//	ce_source            /<application>/<type>/<aggregate id>
//	ce_type              <type>.<event name>, as in order.placed
//	ce_time              the time of the command that caused it, RFC 3339
//	ce_subject           the aggregate id
//	content-type         application/json
//	plait_seq            the event's seq in its instance, from 1, gap-free
//	plait_correlationid  shared by everything one user command set off
//	plait_causationid    the id of the command that caused it
//	plait_position       its position in the application's log
//	plait_user           the user whose command caused it
//	plait_version        the version of the data's shape, when above 1
//	plait_lineage        view events only: the source of each field, JSON
//	                     {"field": {"type", "aggregateId", "seq"}}
//	traceparent          with Publisher.Spans, when it knows the span of the
//	tracestate           command that caused it: its W3C trace context, which
//	                     the reactors' hops (ConsumeWithEvents) continue
//
// Outcomes on P.outcomes have the same ce_ headers with ce_id the command id
// and ce_type plait.outcome.accepted or plait.outcome.rejected, and the
// headers plait_status, plait_correlationid, plait_position and plait_user,
// and with Publisher.Spans the traceparent and tracestate of the command.
// Their value is the outcome's JSON, without its events (they are on the
// events topics):
//
//	{"command": {"id", "type", "aggregateId", "name", "data", "correlationId", "user", "at", ...},
//	 "status": "accepted" | "rejected", "errors": [{"path", "code", "message"}], "position": n}
package kafka
