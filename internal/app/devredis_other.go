//go:build !unix

package app

import (
	"context"

	"go.uber.org/zap"
)

// OpenDevRedis is OpenRedis where the dev redis-server is not supported
// (it needs Unix file locks and process groups): REDIS_URL or the
// embedded Redis.
func OpenDevRedis(ctx context.Context, cfg Config, process, _ string, log *zap.Logger) (*Redis, error) {
	return OpenRedis(ctx, cfg, process, log)
}
