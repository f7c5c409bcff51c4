package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// httpClient is the client behind http_request. Unlike Extism's it checks
// every redirect against the allowlist, pins ports, and refuses to connect
// to loopback, private, link-local and unspecified addresses — checked on
// the address actually dialled, after DNS, so rebinding does not help.
type httpClient struct {
	c       *http.Client
	maxBody int64
}

type deniedError struct{ msg string }

func (e *deniedError) Error() string { return e.msg }

type allowedKey struct{}

func newHTTPClient(allowLoopback bool, maxBody int64) *httpClient {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil {
				return &deniedError{fmt.Sprintf("refusing to dial %s: not an IP address", address)}
			}
			if !allowLoopback && !publicIP(ip) {
				return &deniedError{fmt.Sprintf("refusing to dial %s: loopback, private or link-local address", address)}
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would hide the real destination
		DialContext:           dialer.DialContext,
		MaxIdleConns:          32,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	c := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return &deniedError{"stopped after 5 redirects"}
			}
			allowed, _ := req.Context().Value(allowedKey{}).([]string)
			return checkURL(req.URL, allowed)
		},
	}
	return &httpClient{c: c, maxBody: maxBody}
}

func publicIP(ip net.IP) bool {
	return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast())
}

// parseAllowed reads an allowed_hosts entry: "host", "*.domain" or either
// with ":port". A bare host allows ports 80 and 443 only.
func parseAllowed(e string) (host, port string, err error) {
	host = strings.ToLower(strings.TrimSpace(e))
	if h, p, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return "", "", fmt.Errorf("%q: port must be 1-65535", e)
		}
		host, port = h, p
	}
	if host == "" || strings.ContainsAny(host, "/@?# ") || strings.Contains(host[min(1, len(host)):], "*") {
		return "", "", fmt.Errorf("%q is not a host, *.domain, or either with :port", e)
	}
	return host, port, nil
}

func checkURL(u *url.URL, allowed []string) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return &deniedError{fmt.Sprintf("http_request to %q: only http and https are allowed", u.Redacted())}
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	for _, e := range allowed {
		h, p, err := parseAllowed(e)
		if err != nil {
			continue
		}
		if p == "" && port != "80" && port != "443" || p != "" && p != port {
			continue
		}
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
			return nil
		}
	}
	return &deniedError{fmt.Sprintf("http_request to %s:%s is not allowed (allowed_hosts: %s)", host, port, strings.Join(allowed, ", "))}
}

type httpRequestDoc struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// httpRequest implements Extism's http_request(request, body) -> response.
func (in *instance) httpRequest(ctx context.Context, reqOff, bodyOff uint64) uint64 {
	c := in.call
	c.httpStatus, c.httpHeaders = 0, nil
	var doc httpRequestDoc
	if err := json.Unmarshal(in.k.block(reqOff), &doc); err != nil {
		panic(fmt.Errorf("http_request: invalid request JSON: %v", err))
	}
	in.k.free(reqOff)
	if doc.Method == "" {
		doc.Method = "GET"
	}
	u, err := url.Parse(doc.URL)
	if err != nil {
		panic(fmt.Errorf("http_request: invalid url: %v", err))
	}
	if err := checkURL(u, c.allowed); err != nil {
		c.stop(abi.ExcHTTPDenied, err.Error())
	}
	var body []byte
	if bodyOff != 0 {
		body = bytes.Clone(in.k.block(bodyOff))
		c.meter.httpOut += int64(len(body))
		in.k.free(bodyOff)
	}
	var a httpAnswer
	if !c.taping() {
		a = in.fetch(ctx, doc, u, body)
	} else {
		a = in.tapedFetch(ctx, doc, u, body)
	}
	switch {
	case a.Exc != "":
		c.stop(a.Exc, a.Error)
	case a.Error != "":
		panic(errors.New(a.Error))
	}
	c.httpStatus, c.httpHeaders = a.Status, a.Headers
	if len(a.Body) == 0 {
		return 0
	}
	return in.answer("http_request", a.Body)
}

// httpAnswer is what one http_request hands the plugin: a response, or
// the failure that ends the attempt.
type httpAnswer = abi.TapeHTTPAnswer

// fetch does the request; it reaches the world.
func (in *instance) fetch(ctx context.Context, doc httpRequestDoc, u *url.URL, body []byte) httpAnswer {
	c := in.call
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, allowedKey{}, c.allowed), strings.ToUpper(doc.Method), u.String(), rd)
	if err != nil {
		return httpError("", fmt.Sprintf("http_request: %v", err))
	}
	for k, v := range doc.Headers {
		req.Header.Set(k, v)
	}
	c.meter.httpRequests++
	resp, err := in.h.http.c.Do(req)
	if err != nil {
		var de *deniedError
		if errors.As(err, &de) {
			return httpError(abi.ExcHTTPDenied, "http_request: "+de.msg)
		}
		return httpError("", fmt.Sprintf("http_request %s: %v", u.Redacted(), err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, in.h.http.maxBody+1))
	c.meter.httpIn += int64(len(b))
	if err != nil {
		return httpError("", fmt.Sprintf("http_request %s: read body: %v", u.Redacted(), err))
	}
	if int64(len(b)) > in.h.http.maxBody {
		return httpError("", fmt.Sprintf("http_request %s: response body over the limit of %d bytes", u.Redacted(), in.h.http.maxBody))
	}
	hdr := map[string]string{}
	for k, v := range resp.Header {
		hdr[strings.ToLower(k)] = strings.Join(v, ",")
	}
	var a httpAnswer
	a.Status, a.Body = int32(resp.StatusCode), b
	a.Headers, _ = json.Marshal(hdr)
	return a
}

func httpError(exc, msg string) httpAnswer {
	return httpAnswer{Error: msg, Exc: exc}
}

func enqueueAnswer(k, v string) []byte {
	b, _ := json.Marshal(map[string]string{k: v})
	return b
}

// enqueue implements wasmq_enqueue_v1: the answer is {"uuid"} or {"error"}.
func (in *instance) enqueue(ctx context.Context, request []byte) []byte {
	if in.h.opts.enqueue == nil {
		return enqueueAnswer("error", "this host cannot enqueue child jobs")
	}
	if request == nil {
		return enqueueAnswer("error", "request block not found")
	}
	uuid, err := in.h.opts.enqueue(ctx, in.call.job, append([]byte(nil), request...))
	if err != nil {
		return enqueueAnswer("error", err.Error())
	}
	return enqueueAnswer("uuid", uuid)
}
