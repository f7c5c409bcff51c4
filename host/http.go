package host

import (
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
	var body io.Reader
	if bodyOff != 0 {
		body = strings.NewReader(string(in.k.block(bodyOff)))
		c.meter.httpOut += int64(len(in.k.block(bodyOff)))
		in.k.free(bodyOff)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, allowedKey{}, c.allowed), strings.ToUpper(doc.Method), u.String(), body)
	if err != nil {
		panic(fmt.Errorf("http_request: %v", err))
	}
	for k, v := range doc.Headers {
		req.Header.Set(k, v)
	}
	c.meter.httpRequests++
	resp, err := in.h.http.c.Do(req)
	if err != nil {
		var de *deniedError
		if errors.As(err, &de) {
			c.stop(abi.ExcHTTPDenied, "http_request: "+de.msg)
		}
		panic(fmt.Errorf("http_request %s: %v", u.Redacted(), err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, in.h.http.maxBody+1))
	c.meter.httpIn += int64(len(b))
	if err != nil {
		panic(fmt.Errorf("http_request %s: read body: %v", u.Redacted(), err))
	}
	if int64(len(b)) > in.h.http.maxBody {
		panic(fmt.Errorf("http_request %s: response body over the limit of %d bytes", u.Redacted(), in.h.http.maxBody))
	}
	c.httpStatus = int32(resp.StatusCode)
	hdr := map[string]string{}
	for k, v := range resp.Header {
		hdr[strings.ToLower(k)] = strings.Join(v, ",")
	}
	c.httpHeaders, _ = json.Marshal(hdr)
	if len(b) == 0 {
		return 0
	}
	off := in.k.write(b)
	if off == 0 {
		c.stop(abi.ExcMemoryLimit, fmt.Sprintf("http_request: response of %d bytes does not fit kernel memory", len(b)))
	}
	return off
}

// enqueue implements wasmq_enqueue_v1: the answer is {"uuid"} or {"error"}.
func (in *instance) enqueue(ctx context.Context, request []byte) []byte {
	answer := func(k, v string) []byte {
		b, _ := json.Marshal(map[string]string{k: v})
		return b
	}
	if in.h.opts.enqueue == nil {
		return answer("error", "this host cannot enqueue child jobs")
	}
	if request == nil {
		return answer("error", "request block not found")
	}
	uuid, err := in.h.opts.enqueue(ctx, in.call.job, append([]byte(nil), request...))
	if err != nil {
		return answer("error", err.Error())
	}
	return answer("uuid", uuid)
}
