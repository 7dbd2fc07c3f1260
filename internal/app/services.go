package app

import (
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/campaign/recurring"
	"github.com/wacampaign/wacampaign/internal/campaign/sequence"
	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender"
)

// Services are what the API and the worker share, built once here from
// the configuration and a Redis client, so that the two cannot disagree
// (on the poll schedule, the pacing, the region phones are read in).
type Services struct {
	// Caps are what the configured provider can do (Config.Capabilities).
	Caps      sender.Capabilities
	Queue     *asynq.Client // the asynq client every enqueue goes through
	Pacer     *quota.Pacer
	Accounts  *quota.Accounts
	Daily     *quota.DailyLimits // daily caps and warm-up ramps
	Health    *quota.Health      // account health and what it does
	Ledger    *quota.CreditLedger
	Store     *campaign.Store
	Enqueuer  *campaign.Enqueuer
	Campaigns *campaign.Service // lifecycle actions that enqueue
	Importer  *campaign.Importer
	Sequences *sequence.Service
	Recurring *recurring.Store
	Polls     campaign.PollSchedule // STATUS_POLL_SCHEDULE and its max age; none for a provider without status history
	Audience  *audience.Store       // the suppression list, frequency caps, the last-messaged index
	Inbound   *campaign.Inbound     // opt-out and opt-in keywords, replies
}

// AudienceConfig is what the send path needs of the audience.
func (s *Services) AudienceConfig(cfg Config) campaign.AudienceConfig {
	return campaign.AudienceConfig{Store: s.Audience, Cap: cfg.FrequencyCap, ReplyWindow: cfg.ReplyWindow}
}

// NewServices builds the services on rdb.
func NewServices(cfg Config, rdb redis.UniversalClient, log *zap.Logger) *Services {
	queue := asynq.NewClientFromRedisClient(rdb)
	pacer := quota.NewPacer(rdb, cfg.SendInterval, cfg.SendJitter)
	store := campaign.NewStore(rdb)
	enqueuer := campaign.NewEnqueuer(queue, rdb, pacer)
	caps := cfg.Capabilities()
	campaigns := campaign.NewService(store, enqueuer, caps)
	aud := audience.NewStore(rdb)
	accounts := quota.NewAccounts(rdb)
	// Checked when the API started; a worker has none (it sends the text
	// the API stored), and answers no webhook.
	confirmations, _ := cfg.ConfirmTemplates()
	return &Services{
		Caps:      caps,
		Queue:     queue,
		Pacer:     pacer,
		Accounts:  accounts,
		Daily:     quota.NewDailyLimits(rdb, pacer),
		Health:    quota.NewHealth(rdb, accounts, pacer, cfg.Health),
		Ledger:    quota.NewCreditLedger(rdb),
		Store:     store,
		Enqueuer:  enqueuer,
		Campaigns: campaigns,
		Importer:  campaign.NewImporter(store, enqueuer, cfg.DefaultRegion, log.Named("import"), campaign.ForProvider(caps), campaign.WithSuppressions(aud)),
		Sequences: sequence.NewService(rdb, store, campaigns, cfg.DefaultRegion, sequence.ForProvider(caps)),
		Recurring: recurring.NewStore(rdb),
		Polls:     campaign.PollSchedule{Delays: cfg.StatusPollSchedule, MaxAge: cfg.StatusPollMaxAge}.For(caps),
		Audience:  aud,
		Inbound:   campaign.NewInbound(store, aud, cfg.Keywords(), cfg.ReplyWindow).WithConfirmations(campaigns, confirmations),
	}
}

// Close releases the queue client (not the Redis client it shares).
func (s *Services) Close() error { return s.Queue.Close() }
