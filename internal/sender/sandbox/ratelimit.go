package sandbox

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"time"
)

// tokenBucket is one client IP's allowance. It runs on the sandbox's clock
// (not time.Now) so that tests can hold time still and count exactly.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// allowRequest takes a token from ip's bucket. When there is none it says
// how long until there is.
func (s *Server) allowRequest(ip string, now time.Time) (bool, time.Duration) {
	if s.cfg.RateLimit <= 0 {
		return true, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	burst := float64(s.cfg.RateBurst)
	b, ok := s.buckets[ip]
	if !ok {
		b = &tokenBucket{tokens: burst, last: now}
		s.buckets[ip] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(burst, b.tokens+elapsed.Seconds()*s.cfg.RateLimit)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / s.cfg.RateLimit * float64(time.Second))
	return false, wait
}

// rateLimited is the answer to a request over the rate limit: the API's 429,
// or the CDN's 403 page when Config.BurstAs403; a gateway's 429 (with
// Retry-After) in ModeGateway.
func (s *Server) rateLimited(wait time.Duration) reply {
	if s.cfg.Mode == ModeGateway {
		rep := gatewayError(http.StatusTooManyRequests, "Too many requests", "Rate limit exceeded")
		rep.header = http.Header{"Retry-After": {strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))}}
		return rep
	}
	if s.cfg.BurstAs403 {
		return reply{status: http.StatusForbidden, contentType: "text/html; charset=UTF-8", body: []byte(cdnBlockPage)}
	}
	rep := errorReply(http.StatusTooManyRequests, "rate_limit_exceeded", "Too many requests, slow down", nil)
	if s.cfg.RetryAfter {
		secs := max(1, int(math.Ceil(wait.Seconds())))
		rep.header = http.Header{"Retry-After": {strconv.Itoa(secs)}}
	}
	return rep
}

// clientIP is the host of the request's remote address.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// cdnBlockPage is what the CDN in front of the real API serves to a burst.
const cdnBlockPage = `<!DOCTYPE html>
<html lang="en-US">
<head><title>Attention Required! | Cloudflare</title></head>
<body>
<h1>Sorry, you have been blocked</h1>
<p>This website is using a security service to protect itself from online attacks.</p>
</body>
</html>
`
