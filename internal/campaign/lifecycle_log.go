package campaign

import "go.uber.org/zap"

// LogLifecycle writes the one log line of a campaign lifecycle event
// (created, started, paused, resumed, cancelled, completed, deleted): the
// event, the campaign's id, status and counts, and the caller's fields.
// Every process logs its events with it, so they read alike.
func LogLifecycle(log *zap.Logger, event string, c *Campaign, fields ...zap.Field) {
	base := []zap.Field{
		zap.String("event", event),
		zap.String("campaign", c.ID),
		zap.String("status", string(c.Status)),
		zap.Int64("total", c.Counts.Total),
		zap.Int64("sent", c.Counts.Sent+c.Counts.Delivered+c.Counts.Read),
		zap.Int64("failed", c.Counts.Failed),
		zap.Int64("skipped", c.Counts.Skipped),
	}
	log.Info("campaign "+event, append(base, fields...)...)
}
