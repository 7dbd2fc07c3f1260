// Package console is the web console for the marketing team, served by the
// API process at /: sign in with an API key, campaigns with live progress,
// a new-campaign form, each campaign's funnel, actions and recipients'
// histories, sequences and their enrolments, sender accounts and quota.
//
// Every console action is a call of the public v1 API, made in-process:
// the console builds the request with the session's API key as the Bearer
// token, has the API's http.Handler serve it (inproc.go), decodes the JSON
// envelope and renders HTML. It knows the API only by its contract, so what
// the console can do, any other app can do too.
//
// Pages are server-rendered html/template with a little plain JavaScript
// (no build step, nothing from a CDN; everything is embedded). They work
// without JavaScript where a plain form can do the job; the script adds
// times in the viewer's zone, live updates over server-sent events, the
// contacts file's columns read in the browser, and drag and drop.
//
// Sessions live in Redis (keys.go, session.go): the cookie holds a random
// id, the API key stays on the server, sealed with a key derived from that
// id. Every form carries a CSRF token derived from the session.
package console
