package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser suite drives headless Chromium through the console as a
// person would. It needs a Chromium: it skips, saying so, when none is
// installed, except in CI (CI set), where a missing browser fails it.

// viewerZone is the time zone the browser pretends to be in, so that the
// suite can see times shown in the viewer's zone.
const viewerZone = "Europe/Madrid"

// chromiumPath finds a Chromium (CHROME_PATH first).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "0" && ci != "false" {
		t.Fatal("no Chromium found, and CI must run the browser suite: apt-get install -y chromium (or set CHROME_PATH)")
	}
	t.Skip("no Chromium found, so the browser suite does not run here: apt-get install -y chromium (or set CHROME_PATH); in CI it always runs")
	return ""
}

// tab is one browser tab on the console.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// openBrowser starts a headless Chromium with a 1280 px wide window, in
// viewerZone, until the test ends.
func openBrowser(t *testing.T, base string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 900), chromedp.Flag("lang", "en-US"))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: viewerZone}); err != nil {
		t.Fatal(err)
	}
	return &tab{t: t, ctx: ctx, base: base}
}

// within runs f with a deadline for one step of the suite.
func (b *tab) within(d time.Duration, f func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := f(ctx); err != nil {
		b.t.Fatalf("%v (at %s)", err, b.location())
	}
}

// do runs actions, 30 s at most.
func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.within(30*time.Second, func(ctx context.Context) error { return chromedp.Do(ctx, actions...) })
}

// open navigates to a path of the console.
func (b *tab) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

// follow clicks css, which leads to another page, and waits for that
// page's answer; it returns the answer's status.
func (b *tab) follow(css string) int64 {
	b.t.Helper()
	var status int64
	b.within(60*time.Second, func(ctx context.Context) error {
		res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css)))
		if err == nil && res != nil {
			status = res.Status
		}
		return err
	})
	return status
}

// text is the visible text of the first element matching css, read in one
// go in the page (a live update may replace the element at any moment).
func (b *tab) text(css string) string {
	b.t.Helper()
	b.waitUntil(30*time.Second, `!!document.querySelector(`+strconv.Quote(css)+`)`)
	return eval[string](b, `document.querySelector(`+strconv.Quote(css)+`).innerText`)
}

// location is the tab's URL ("" when it cannot be read).
func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// eval runs JavaScript in the page and decodes its value.
func eval[T any](b *tab, js string) T {
	b.t.Helper()
	var v T
	b.within(30*time.Second, func(ctx context.Context) (err error) {
		v, err = chromedp.Run(ctx, chromedp.Evaluate[T](js))
		return err
	})
	return v
}

// waitUntil waits until the JavaScript condition holds, up to d.
func (b *tab) waitUntil(d time.Duration, condition string) {
	b.t.Helper()
	b.within(d, func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](condition, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0)))
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", condition, err)
		}
		return nil
	})
}

// pageText is the text of the whole page.
func (b *tab) pageText() string { b.t.Helper(); return eval[string](b, `document.body.innerText`) }

// mustSee fails unless the page shows every one of texts.
func (b *tab) mustSee(texts ...string) {
	b.t.Helper()
	page := b.pageText()
	for _, s := range texts {
		if !strings.Contains(page, s) {
			b.t.Fatalf("the page at %s does not show %q; it shows:\n%s", b.location(), s, page)
		}
	}
}

// everyControlLabelled fails for a form control on the page that has no
// label a screen reader would read.
func (b *tab) everyControlLabelled() {
	b.t.Helper()
	unlabelled := eval[[]string](b, `[...document.querySelectorAll('input, select, textarea, button')]
		.filter(el => el.type !== 'hidden' && !el.closest('template'))
		.filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
		.map(el => el.outerHTML.slice(0, 120))`)
	if len(unlabelled) > 0 {
		b.t.Errorf("controls without a label at %s:\n%s", b.location(), strings.Join(unlabelled, "\n"))
	}
}

// sessionCookie is the console's session cookie as the browser holds it.
func (b *tab) sessionCookie() *http.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "wac_session" {
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				b.t.Errorf("session cookie: HttpOnly %v, SameSite %q; want HttpOnly and Strict", c.HTTPOnly, c.SameSite)
			}
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	b.t.Fatal("the browser holds no session cookie")
	return nil
}

// download clicks the element css and answers the file the browser saved.
func (b *tab) download(css string) []byte {
	b.t.Helper()
	dir := b.t.TempDir()
	progress := chromedp.BrowserEvents(b.ctx, browser.DownloadProgress)
	allow := true
	if _, err := chromedp.CallBrowser(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &allow,
	}); err != nil {
		b.t.Fatal(err)
	}
	b.do(chromedp.Click(chromedp.CSS(css)))
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	for ev, err := range progress {
		if err != nil || ctx.Err() != nil {
			b.t.Fatalf("the download did not complete: %v %v", err, ctx.Err())
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			data, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				b.t.Fatal(err)
			}
			return data
		}
	}
	b.t.Fatal("no download")
	return nil
}

// screenshot writes docs/console/<name>.png when UPDATE_SCREENSHOTS=1;
// normal runs leave the committed pictures alone.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") != "1" {
		return
	}
	var png []byte
	b.within(30*time.Second, func(ctx context.Context) (err error) {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	path := filepath.Join("..", "..", "docs", "console", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
