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
	"strings"
)

// maxBody bounds what an http probe reads of a response body.
const maxBody = 1 << 20

// ProbeHTTP sends GET t.Path to t.Address on a fresh connection (so that
// attempts spread over every process listening there) and checks the
// status (t.ExpectStatus, or any 2xx) and, with t.ExpectBody, that the
// body matches the regular expression. It serves httpchk-style targets
// and clustercheck endpoints alike.
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
	wantOK := resp.StatusCode >= 200 && resp.StatusCode < 300
	if t.ExpectStatus != 0 {
		wantOK = resp.StatusCode == t.ExpectStatus
	}
	if !wantOK {
		return fail(fmt.Sprintf("%s %d", ReasonHTTPStatus, resp.StatusCode),
			fmt.Errorf("got %s: %s", resp.Status, strings.TrimSpace(truncate(body, 80))))
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
