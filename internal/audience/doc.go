// Package audience keeps what the product knows about the people it
// messages, apart from any one campaign: the suppression list (who must
// never be messaged again, and why), the frequency cap across campaigns,
// and the "last messaged by" index that attributes an incoming reply to the
// campaign or sequence step that prompted it. It also reads opt-out and
// opt-in keywords in incoming messages.
//
// Store is the only holder of its Redis keys (keys.go) and scripts
// (scripts.go). Addresses are normalised by the caller: a phone in E.164,
// or a group's JID; a person's JID is stored as its phone, so a number
// that opted out by phone is suppressed however a campaign addresses it.
package audience
