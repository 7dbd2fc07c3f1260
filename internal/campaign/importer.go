package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/templating"
)

// Draft is what a user asks for when creating a campaign, before the
// contacts are read.
type Draft struct {
	Name         string
	Template     *templating.Template
	TemplateName string    // the file in templates/ it came from, if any
	Accounts     []string  // sender accounts as the user wrote them
	Label        string    // chat label the provider assigns
	FileUID      string    // attachment sent with every message
	SendAt       time.Time // zero: start now
	Window       *Window   // when recipients may get messages; nil: any time

	// TypingSimulation and PresenceSimulation: the gateway's typing
	// indicator and presence around each message (nil: on, the default).
	// A provider without them refuses either.
	TypingSimulation   *bool
	PresenceSimulation *bool

	// CapPolicy is what FREQUENCY_CAP does to a recipient it holds back:
	// CapSkip ("" too) or CapDefer.
	CapPolicy string
	// Transactional exempts the campaign from FREQUENCY_CAP (a
	// transactional sequence's steps).
	Transactional bool

	// ID, when set, is the campaign's id instead of a new one: a recurring
	// run's, derived from its definition and tick, so that a run whose
	// import could not be recorded finds its campaign again by id.
	ID string

	// Hold keeps the campaign from sending until Release: the request
	// creating it is still being read, and may yet bring fields that change
	// it or break off (upload.go).
	Hold bool

	// AsDraft imports and checks the contacts but queues nothing: the
	// campaign is a draft until Service.Start (drafts.go).
	AsDraft bool

	// Variants are the A/B templates (2 to 4; Template is the first's),
	// Winner the optional test-then-winner mode (variants.go).
	Variants []DraftVariant
	Winner   *Winner
	// EmptyWhenSuppressed makes a file whose every recipient is suppressed
	// (the others, if any, rejected or duplicates) a campaign completed at
	// once with its suppressed count, instead of an *InputError: a
	// recurring run, whose list of opted-out people did nothing wrong. An
	// upload keeps the error (README "Opt-outs, replies, frequency cap").
	EmptyWhenSuppressed bool
}

// Importer turns an upload into a campaign: it streams the CSV, normalises
// and de-duplicates phones, writes recipients in batches and enqueues their
// tasks while the rest of the file is still being read.
type Importer struct {
	store    *Store
	audience *audience.Store // the suppression list; nil: none
	queue    *Enqueuer
	region   string
	caps     sender.Capabilities // the provider's: what a campaign may ask for
	log      *zap.Logger
	now      func() time.Time
	parallel int // chunks of tasks written at once (taskwriter.go)
}

// ImporterOption configures an Importer.
type ImporterOption func(*Importer)

// ForProvider makes the importer follow the capabilities of the provider
// messages go through: it refuses what the provider cannot do (a label,
// an attachment, a kind of recipient) and estimates its credits (none for
// an unmetered provider). Default: TimelinesAI's.
func ForProvider(caps sender.Capabilities) ImporterOption {
	return func(im *Importer) { im.caps = caps }
}

// WithSuppressions makes the importer count recipients on the suppression
// list as suppressed rather than queue them.
func WithSuppressions(a *audience.Store) ImporterOption {
	return func(im *Importer) { im.audience = a }
}

// NewImporter returns an Importer; region is DEFAULT_REGION, for phones
// written without a country code.
func NewImporter(store *Store, queue *Enqueuer, region string, log *zap.Logger, opts ...ImporterOption) *Importer {
	im := &Importer{store: store, queue: queue, region: region, caps: sender.TimelinesCapabilities(), log: log, now: time.Now, parallel: 32}
	for _, o := range opts {
		o(im)
	}
	return im
}

const (
	MaxNameLength  = 200                   // of a campaign's name, in characters
	batchRows      = 512                   // recipients written per round trip
	batchMaxDelay  = 50 * time.Millisecond // the first tasks must not wait for a full batch
	rowMaxBytes    = maxFieldsLength
	sendAtTooEarly = time.Minute // a send_at this far in the past is a mistake, not "now"
)

// Import creates a campaign from d and the contacts CSV. Mistakes in the
// input come back as *InputError before anything is created, except rows:
// bad rows are listed in the campaign's rejected rows while the good ones go
// on. A file with no good row is an InputError too. A failure to read the
// upload is a *ReadError, one of Redis a *StoreError. If either happens after
// the campaign was created, that campaign is cancelled (its remaining
// recipients skipped) and the error comes wrapped in *AbortedImportError.
func (im *Importer) Import(ctx context.Context, d Draft, contacts io.Reader) (*Campaign, error) {
	c, err := im.Check(d)
	if err != nil {
		return nil, err
	}
	in, err := openCSV(contacts)
	if err != nil {
		return nil, err
	}
	return im.run(ctx, c, d, in)
}

// ImportJSON is Import for contacts as JSON objects: dec has just read the
// '[' of a JSON array (inArray), or holds one object per value until its
// end (JSON lines). It reads the array's closing ']'.
func (im *Importer) ImportJSON(ctx context.Context, d Draft, dec *json.Decoder, inArray bool) (*Campaign, error) {
	c, err := im.Check(d)
	if err != nil {
		return nil, err
	}
	in, err := openJSONContacts(dec, inArray)
	if err != nil {
		return nil, err
	}
	return im.run(ctx, c, d, in)
}

func (im *Importer) run(ctx context.Context, c *Campaign, d Draft, src rowSource) (*Campaign, error) {
	lay := src.columnsOf()
	if err := checkTemplate(d.Template, lay.columns); err != nil {
		return nil, err
	}
	if err := checkVariantColumns(d.Variants, lay.columns); err != nil {
		return nil, err
	}
	run, err := im.newRun(c, src)
	if err != nil {
		return nil, err
	}
	c.Columns = lay.columns
	for _, k := range run.keys {
		c.KeyColumns = append(c.KeyColumns, lay.columns[k.index])
	}
	run.hold = d.Hold
	run.emptyWhenSuppressed = d.EmptyWhenSuppressed && !d.AsDraft
	return run.execute(ctx)
}

// importRun is one import in progress: the caller's goroutine parses rows,
// a writer goroutine batches them into Redis, and a pool enqueues tasks.
type importRun struct {
	im      *Importer
	c       *Campaign
	src     rowSource
	lay     *layout
	keys    []keyColumn // the key columns the provider can address, in order
	refused []keyColumn // those it cannot: a row keyed only there is rejected
	dedupe  *dedupe
	hold    bool // Draft.Hold
	// emptyWhenSuppressed is Draft.EmptyWhenSuppressed.
	emptyWhenSuppressed bool

	created        bool
	heldRejected   []RejectedRow // rejected before the campaign existed
	listedRejected int64
	accepted       int64
	rejected       int64
	duplicates     int64
	suppressed     int64
	nextSeq        int64 // the number of the next recipient stored
}

// importItem is one parsed row on its way to the writer: exactly one field set.
type importItem struct {
	row       *pendingRow
	rejected  *RejectedRow
	duplicate bool
}

func (r *importRun) execute(ctx context.Context) (*Campaign, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// Three stages overlap: this goroutine parses, the writer stores rows in
	// batches, the enqueuer plans and enqueues each stored batch.
	items := make(chan importItem, 4*batchRows)
	batches := make(chan []int64, 4)
	var wg sync.WaitGroup
	var writeErr, enqueueErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(batches)
		if err := r.write(ctx, items, batches); err != nil {
			writeErr = err
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		for seqs := range batches {
			if ctx.Err() != nil {
				continue // drain
			}
			if err := r.enqueue(ctx, seqs); err != nil {
				enqueueErr = err
				cancel(err)
			}
		}
	}()

	readErr := r.parse(ctx, items)
	close(items)
	wg.Wait()

	var failure error
	switch {
	case writeErr != nil:
		failure = writeErr
	case enqueueErr != nil:
		failure = enqueueErr
	case readErr != nil:
		failure = readErr
	}
	if cause := context.Cause(ctx); errors.Is(failure, context.Canceled) && cause != nil {
		// A stage that only saw the run cancelled: the cause is the stage
		// that failed first (a Redis failure is a 503, not a 500).
		failure = cause
	}
	if failure != nil {
		return nil, r.abort(failure)
	}
	if !r.created && (!r.emptyWhenSuppressed || r.suppressed == 0) {
		return nil, r.nothingToSend()
	}
	if !r.created {
		if err := r.createSuppressedOnly(ctx); err != nil {
			return nil, r.abort(err)
		}
	}
	return r.finish(context.WithoutCancel(ctx))
}

// createSuppressedOnly makes the campaign of a file whose every recipient
// is suppressed: no recipient, its suppressed, duplicate and rejected
// counts; finish then completes it (nothing is queued).
func (r *importRun) createSuppressedOnly(ctx context.Context) error {
	if err := r.create(ctx); err != nil {
		return err
	}
	batch := rowBatch{duplicates: r.duplicates, suppressed: r.suppressed}
	if err := r.im.store.addRows(ctx, r.c.ID, batch, r.im.now()); err != nil {
		return storeFailed(ctx, err)
	}
	return storeFailed(ctx, r.im.store.addRejected(ctx, r.c.ID, r.heldRejected, 0))
}

// finish records that every row is in. A held campaign stays held (and
// listed for the janitor) until Release; any other is done with its upload.
func (r *importRun) finish(ctx context.Context) (*Campaign, error) {
	if r.c.SendAt != nil && r.c.Status != StatusDraft {
		// A scheduled campaign's recipients wait in Redis; one durable task
		// starts them at send_at, planned from the accounts' timelines as
		// they are then.
		if err := r.im.queue.enqueueStart(ctx, r.c.ID, *r.c.SendAt, 0); err != nil {
			return nil, r.abort(storeFailed(ctx, err))
		}
	}
	done := r.im.store.finishImport
	if !r.hold {
		done = r.im.store.endUpload
	}
	if err := done(ctx, r.c.ID, r.im.now()); err != nil {
		return nil, r.abort(storeFailed(ctx, err))
	}
	r.im.log.Info("campaign imported",
		zap.String("campaign", r.c.ID),
		zap.Bool("held", r.hold),
		zap.Int64("recipients", r.accepted),
		zap.Int64("duplicates", r.duplicates),
		zap.Int64("suppressed", r.suppressed),
		zap.Int64("rejected", r.rejected))
	c, err := r.im.store.Get(ctx, r.c.ID)
	if err != nil && r.hold {
		// The caller cannot release a campaign it did not get.
		return nil, r.abort(storeFailed(ctx, err))
	}
	return c, err
}

// enqueue plans and enqueues a stored batch (not for a scheduled campaign:
// its start task does that at send_at; not for a draft: Start does).
func (r *importRun) enqueue(ctx context.Context, seqs []int64) error {
	if r.c.SendAt != nil || r.c.Status == StatusDraft {
		return nil
	}
	latest, err := r.im.queue.enqueueBatch(ctx, sendBatch{campaign: r.c.ID, accounts: r.c.Accounts, seqs: seqs, parallel: r.im.parallel})
	if err != nil {
		return storeFailed(ctx, err)
	}
	return storeFailed(ctx, r.im.store.notePlanEnd(ctx, r.c.ID, latest))
}

// parse reads the rows and hands each to the writer. It returns the first
// error of the underlying reader (a broken upload), not row problems, which
// only reject their row.
func (r *importRun) parse(ctx context.Context, items chan<- importItem) error {
	for {
		rec, rowNum, problem, err := r.src.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &ReadError{Err: err}
		}
		var item importItem
		if problem == "" {
			var values []string
			var key recipientKey
			values, key, problem = r.checkRow(rec)
			switch {
			case values == nil && problem == "":
				continue // a row of empty cells, as spreadsheets leave at the end
			case problem == "":
				if r.dedupe.seen(key) {
					item.duplicate = true
				} else {
					item.row = &pendingRow{values: values, row: rowNum, address: key.audienceAddress()}
				}
			}
		}
		if problem != "" {
			item.rejected = &RejectedRow{Row: rowNum, Msg: problem}
		}
		select {
		case items <- item:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// write batches parsed rows into Redis and passes each stored batch on to be
// enqueued (a task must never run before its row exists). It flushes every
// batchRows rows or batchMaxDelay, so the first recipients are sendable
// while the upload is still arriving.
func (r *importRun) write(ctx context.Context, items <-chan importItem, batches chan<- []int64) error {
	var b importBatch
	ticker := time.NewTicker(batchMaxDelay)
	defer ticker.Stop()
	for {
		select {
		case it, ok := <-items:
			if !ok {
				return r.flush(ctx, &b, batches)
			}
			switch {
			case it.row != nil:
				b.rows = append(b.rows, *it.row)
				r.accepted++
			case it.rejected != nil:
				b.rejected = append(b.rejected, *it.rejected)
				r.rejected++
			case it.duplicate:
				b.duplicates++
				r.duplicates++
			}
			if len(b.rows) >= batchRows {
				if err := r.flush(ctx, &b, batches); err != nil {
					return err
				}
			}
		case <-ticker.C:
			if err := r.flush(ctx, &b, batches); err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// importBatch is what write has gathered since its last flush.
type importBatch struct {
	rows       []pendingRow
	rejected   []RejectedRow
	duplicates int64
	suppressed int64
}

// flush stores a batch (creating the campaign with its first rows) and
// passes its recipients on to be enqueued.
func (r *importRun) flush(ctx context.Context, b *importBatch, batches chan<- []int64) error {
	if err := r.dropSuppressed(ctx, b); err != nil {
		return err
	}
	if len(b.rows) > 0 && !r.created {
		if err := r.create(ctx); err != nil {
			return err
		}
		b.rejected = append(r.heldRejected, b.rejected...)
		r.heldRejected = nil
	}
	if !r.created {
		// Keep what a later create needs; cap it like the stored list.
		for _, rj := range b.rejected {
			if len(r.heldRejected) < MaxRejectedListed {
				r.heldRejected = append(r.heldRejected, rj)
			}
		}
		b.rejected = b.rejected[:0]
		return nil
	}
	if len(b.rows) > 0 || b.duplicates > 0 || b.suppressed > 0 || len(b.rejected) > 0 {
		batch := rowBatch{rows: b.rows, duplicates: b.duplicates, suppressed: b.suppressed, credits: r.credits(b.rows)}
		if err := r.im.store.addRows(ctx, r.c.ID, batch, r.im.now()); err != nil {
			return storeFailed(ctx, err)
		}
	}
	if len(b.rejected) > 0 {
		if err := r.im.store.addRejected(ctx, r.c.ID, b.rejected, r.listedRejected); err != nil {
			return storeFailed(ctx, err)
		}
		r.listedRejected = min(MaxRejectedListed, r.listedRejected+int64(len(b.rejected)))
	}
	if len(b.rows) > 0 {
		seqs := make([]int64, len(b.rows))
		for i, row := range b.rows {
			seqs[i] = row.seq
		}
		select {
		case batches <- seqs:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	b.rows, b.rejected, b.duplicates, b.suppressed = b.rows[:0], b.rejected[:0], 0, 0
	return nil
}

// dropSuppressed takes the suppressed recipients out of a batch (counted,
// never queued) with one look at the suppression list for the whole batch,
// and numbers the others: recipients are numbered as they are stored, so
// that the numbers stay dense.
func (r *importRun) dropSuppressed(ctx context.Context, b *importBatch) error {
	if r.im.audience != nil && len(b.rows) > 0 {
		addresses := make([]string, len(b.rows))
		for i, row := range b.rows {
			addresses[i] = row.address
		}
		suppressed, err := r.im.audience.Suppressed(ctx, addresses)
		if err != nil {
			return storeFailed(ctx, err)
		}
		kept, dropped := b.rows[:0], int64(0)
		for i, row := range b.rows {
			if suppressed[i] {
				dropped++
				continue
			}
			kept = append(kept, row)
		}
		b.rows = kept
		b.suppressed += dropped // a batch before the campaign exists carries them to the next
		r.suppressed += dropped
		r.accepted -= dropped
	}
	for i := range b.rows {
		b.rows[i].seq = r.nextSeq
		r.nextSeq++
	}
	return nil
}

// create writes the campaign when its first row is ready to be stored, and
// lists it as uploading (held, when the caller asked for that) before any
// of its tasks can exist.
func (r *importRun) create(ctx context.Context) error {
	phoneColumn := ""
	if i := r.lay.phoneIndex(); i >= 0 && addressable(r.im.caps, KindPhone) {
		phoneColumn = r.lay.columns[i]
	}
	if err := r.im.store.create(ctx, r.c, phoneColumn, true); err != nil {
		return storeFailed(ctx, err)
	}
	r.created = true // from here on, a failure cancels it
	return storeFailed(ctx, r.im.store.beginUpload(ctx, r.c.ID, r.hold, r.im.now()))
}

// credits estimates what a batch of recipients will cost the provider: what
// a message with text and the campaign's file, or the row's own file_uid
// column, costs (nothing, when it meters no credits).
func (r *importRun) credits(rows []pendingRow) int64 {
	var n int64
	for _, row := range rows {
		msg := sender.Message{Text: r.c.Template, FileUID: r.c.FileUID}
		if r.lay.file >= 0 && row.values[r.lay.file] != "" {
			msg.FileUID = row.values[r.lay.file]
		}
		n += int64(r.im.caps.Credits(msg))
	}
	return n
}

// nothingToSend is the answer to a file without a single good row.
func (r *importRun) nothingToSend() error {
	msg := "the contacts file has no rows to send to"
	if r.rejected > 0 || r.duplicates > 0 {
		msg = fmt.Sprintf("the contacts file has no valid recipient: %d rows rejected", r.rejected)
	}
	if r.suppressed > 0 {
		msg = fmt.Sprintf("the contacts file has no recipient to send to: %d are on the suppression list (GET /v1/suppressions), %d rows rejected", r.suppressed, r.rejected)
	}
	e := &InputError{Msg: msg, Problems: []Problem{{Fields: []string{"contacts"}, Msg: msg}}}
	for i, rj := range r.heldRejected {
		if i == 20 {
			break
		}
		e.Problems = append(e.Problems, Problem{Fields: []string{"contacts", "row " + strconv.Itoa(rj.Row)}, Msg: rj.Msg})
	}
	return e
}

// abort cancels what was imported of a broken upload, so that half a list is
// not sent while the user, who got an error, uploads it again. When even the
// cancel cannot be written (Redis is down), the janitor cancels the campaign
// later: it is still listed as uploading, and its progress stopped.
func (r *importRun) abort(cause error) error {
	if !r.created {
		return cause
	}
	sent := ""
	if r.hold {
		sent = "; nothing was sent"
	}
	reason := fmt.Sprintf("%s after %d recipients%s: %v", whatStopped(cause), r.accepted, sent, cause)
	err := r.im.cancelUpload(r.c.ID, reason)
	return &AbortedImportError{CampaignID: r.c.ID, Recipients: r.accepted, Cancelled: err == nil, Err: cause}
}

// NewID makes a campaign id that sorts by creation time: the time in base 36
// and six random base-36 digits.
func NewID(now time.Time) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	suffix := make([]byte, 6)
	for i := range suffix {
		suffix[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return strconv.FormatInt(now.UnixMilli(), 36) + string(suffix)
}
