package probe

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// builtinPage matches the shape of haproxy's built-in error pages (and of
// the errorfiles Debian ships, which copy them):
// "<html><body><h1>503 Service Unavailable</h1>\n<sentence>\n</body></html>".
var builtinPage = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^<html><body><h1>(\d{3}) [^<]*</h1>\s*([^<]*?)\s*</body></html>$`)
})

// builtinSentence is the sentence of haproxy's built-in page for status,
// as 2.6 to 3.x write it (src/http.c, http_err_msgs; 500 has Debian's
// spelling too), or nil for a status haproxy has no page for.
func builtinSentence(status int) []string {
	switch status {
	case 200:
		return []string{"Service ready."} // monitor-uri
	case 400:
		return []string{"Your browser sent an invalid request."}
	case 401, 407:
		return []string{"You need a valid user and password to access this content."}
	case 403:
		return []string{"Request forbidden by administrative rules."}
	case 404:
		return []string{"The resource could not be found."}
	case 405:
		return []string{"A request was made of a resource using a request method not supported by that resource"}
	case 408:
		return []string{"Your browser didn't send a complete request in time."}
	case 410:
		return []string{"The resource is no longer available and will not be available again."}
	case 421:
		return []string{"Request sent to a non-authoritative server."}
	case 425:
		return []string{"Your browser sent early data."}
	case 429:
		return []string{"You have sent too many requests in a given amount of time."}
	case 500:
		return []string{"An internal server error occured.", "An internal server error occurred."}
	case 502:
		return []string{"The server returned an invalid or incomplete response."}
	case 503:
		return []string{"No server is available to handle this request."}
	case 504:
		return []string{"The server didn't respond in time."}
	}
	return nil
}

// HAProxyError reports whether an HTTP response with this status and
// body is haproxy's own error page rather than a server's answer: one of
// haproxy's built-in pages for that status, or a body the config answers
// that status with (pages, from errorfile and http-error; see
// Target.ErrorPages). A server that answers 503 with a page of its own is
// not mistaken for haproxy; an errorfile haguard could not read is.
func HAProxyError(status int, body []byte, pages map[int][]string) bool {
	b := strings.TrimSpace(string(body))
	if slices.Contains(pages[status], b) {
		return true
	}
	m := builtinPage().FindStringSubmatch(b)
	if m == nil || m[1] != strconv.Itoa(status) {
		return false
	}
	return slices.Contains(builtinSentence(status), m[2])
}

// noServerAnswered: haproxy answers these statuses itself when it could
// not get an answer from any server (500 for an internal error on the
// way, 502 a bad answer, 503 no server, 504 a server too slow). Its other
// pages (403 from a deny rule, 401 from an auth rule, 200 from
// monitor-uri) are the config's own answers to this path.
func noServerAnswered(status int) bool {
	switch status {
	case 500, 502, 503, 504:
		return true
	}
	return false
}
