package app

import (
	"context"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger returns the process logger: JSON lines for machines, or a
// console format for people when format is "console" (`make run`).
func NewLogger(level, format string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		cfg.DisableStacktrace = true
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil // every line of a send matters when something goes wrong
	return cfg.Build()
}

// RedisLogsTo sends go-redis's own log lines (a pool dial that failed, a
// Sentinel failover, a cluster's slots reloaded) to log as warnings, in the
// process's format, instead of the standard library's logger on stderr.
// go-redis has one logger for the whole process.
func RedisLogsTo(log *zap.Logger) {
	redis.SetLogger(redisLogger{log.Named("go-redis").Sugar()})
}

// redisLogger is go-redis's logging interface over zap.
type redisLogger struct{ s *zap.SugaredLogger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.s.Warnf(format, v...)
}
