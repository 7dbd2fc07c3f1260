package templating

import (
	"errors"
	"hash/fnv"
)

// pickState is what {{pick}} chooses by during one Render: the recipient's
// seed and how many picks came before, so that two picks of one message
// ({{pick "Hi" "Hello"}} … {{pick "Thanks" "Cheers"}}) are not tied to each
// other. A template has no loop, so the n-th pick of a recipient's message
// is always the same call.
type pickState struct {
	seed  uint64
	calls uint64
}

var errPickNothing = errors.New("pick needs at least one choice")

// pick answers one of choices, deterministically for the seed and the call.
func (p *pickState) pick(choices []string) (string, error) {
	if len(choices) == 0 {
		return "", errPickNothing
	}
	if p == nil {
		return choices[0], nil
	}
	x := mix(p.seed + p.calls*0x9e3779b97f4a7c15)
	p.calls++
	return choices[x%uint64(len(choices))], nil
}

// pickSeed is the seed of a recipient's picks in a campaign.
func pickSeed(campaignID, recipient string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(campaignID))
	h.Write([]byte{0})
	h.Write([]byte(recipient))
	return h.Sum64()
}

// mix is splitmix64's finalizer: FNV's high bits barely move when only the
// last characters differ (phone numbers in a row), and the choice is taken
// modulo a small number.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
