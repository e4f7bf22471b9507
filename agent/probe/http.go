package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// maxBody bounds what an http probe reads of a response body.
const maxBody = 1 << 20

// ProbeHTTP sends GET t.Path to t.Address on a fresh connection (so that
// attempts spread over every process listening there) and judges the
// answer. With t.ExpectStatus the status must be that. Otherwise the
// question is whether a server answered: haproxy's own 500/502/503/504
// page fails as "haproxy 503" (no server answered), any other answer of
// haproxy's own passes with a note, a server's 1xx-4xx passes, and a
// server's 5xx fails as "http status 503" unless the same status was
// answered before (t.Baseline). With t.ExpectBody the body must match
// the regular expression too. It serves httpchk-style targets and
// clustercheck endpoints alike.
func ProbeHTTP(ctx context.Context, t Target, r *Result, _ *slog.Logger) error {
	var re *regexp.Regexp
	if t.ExpectBody != "" {
		var err error
		if re, err = regexp.Compile(t.ExpectBody); err != nil {
			return fmt.Errorf("expect body: %w", err)
		}
	}
	path := t.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Address+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	req.Header.Set("User-Agent", "haguard-probe")
	tr := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil,
		DialContext:       (&net.Dialer{}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	r.HTTPStatus = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if err := judgeStatus(t, resp, body, r); err != nil {
		return err
	}
	if re != nil && !re.Match(body) {
		return failf(ReasonHTTPBody, "body does not match %q: %q", t.ExpectBody, truncate(body, 80))
	}
	return nil
}

// unwrapURLError drops net/http's "Get \"http://...\":" preamble; the
// target is already in the report.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// judgeStatus is ProbeHTTP's verdict on the status (see there).
func judgeStatus(t Target, resp *http.Response, body []byte, r *Result) error {
	code := resp.StatusCode
	r.ByHAProxy = HAProxyError(code, body, t.ErrorPages)
	switch {
	case t.ExpectStatus != 0:
		if code == t.ExpectStatus {
			return nil
		}
	case r.ByHAProxy && noServerAnswered(code):
		return fail(fmt.Sprintf("%s %d", ReasonHAProxyStatus, code),
			fmt.Errorf("haproxy answered %s itself: %s", resp.Status, haproxyMeaning(code)))
	case r.ByHAProxy:
		r.Note = fmt.Sprintf("haproxy answered %d itself (a rule of the config, not a server); probe a path it forwards with --path", code)
		return nil
	case code < 500:
		return nil
	case t.Baseline != nil && slices.Contains(t.Baseline.Statuses, code):
		r.Note = fmt.Sprintf("the server answered %d before too", code)
		return nil
	}
	return fail(fmt.Sprintf("%s %d", ReasonHTTPStatus, code),
		fmt.Errorf("got %s: %s", resp.Status, strings.TrimSpace(truncate(body, 80))))
}

// haproxyMeaning says what haproxy's own 5xx tells about the servers.
func haproxyMeaning(code int) string {
	switch code {
	case 502:
		return "a server's answer was invalid or incomplete"
	case 503:
		return "no server is available"
	case 504:
		return "no server answered in time"
	}
	return "an internal error on the way to the server"
}
