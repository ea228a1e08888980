package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/maskgate/maskgate/internal/testkit"
)

// client trusts the CA and speaks only HTTP/2 (h2 true) or only HTTP/1.1 over TLS.
func (ca *testCA) client(h2 bool) *http.Client {
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, Protocols: &p}}
}

// startTLS starts a gateway serving TLS with the certificate in certFile and keyFile.
func startTLS(t *testing.T, sim *testkit.Sim, ca *testCA, certFile, keyFile string) *started {
	t.Helper()
	_, prefix := testkit.Redis(t)
	e := env(sim, prefix)
	e["MASKGATE_TLS_CERT_FILE"], e["MASKGATE_TLS_KEY_FILE"] = certFile, keyFile
	s := start(t, nil, e)
	s.https = ca.client(false)
	return s
}

// served is the certificate a new TLS connection is served.
func served(t *testing.T, addr string, ca *testCA) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// certExpiry is maskgate_tls_certificate_expiration_timestamp_seconds from /metrics.
func certExpiry(t *testing.T, s *started) int64 {
	t.Helper()
	return int64(s.metric(t, "maskgate_tls_certificate_expiration_timestamp_seconds"))
}

func TestAPIOverTLS(t *testing.T) {
	ca, certFile, keyFile := writeTestPKI(t)
	sim := testkit.NewSim(t)
	sim.StartCall("83", false, true)
	s := startTLS(t, sim, ca, certFile, keyFile)

	// Plain HTTP is refused before any handler runs: nothing reaches CXone.
	resp, err := post(t, "http://"+s.addr+"/v1/agents/83/mask", callerToken(t, "recordings:mask"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(sim.Requests()) != 0 {
		t.Fatalf("plain HTTP mask = %d, CXone requests %v; want 400 and none", resp.StatusCode, sim.Requests())
	}

	if a := s.call(t, "POST", "/v1/agents/83/mask", "", ""); a.status != 200 || a.proto != "HTTP/1.1" {
		t.Fatalf("mask over HTTP/1.1 and TLS = %d %s %s", a.status, a.proto, a.body)
	}
	s.https = ca.client(true)
	if a := s.call(t, "GET", "/v1/agents/83/mask", "", ""); a.status != 200 || a.proto != "HTTP/2.0" || !strings.Contains(a.body, `"state":"masked"`) {
		t.Errorf("get over HTTP/2 = %d %s %s", a.status, a.proto, a.body)
	}
	if a := s.call(t, "POST", "/v1/agents/83/unmask", "", ""); a.status != 200 || a.proto != "HTTP/2.0" {
		t.Errorf("unmask over HTTP/2 = %d %s %s", a.status, a.proto, a.body)
	}
	if l := s.logLine(t, "unmask"); l["audit"] != true || l["user_id"] != "83" {
		t.Errorf("audit line of the unmask over HTTP/2: %v", l)
	}

	if _, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded; TLS 1.2 is the least")
	}
	if got, want := certExpiry(t, s), served(t, s.addr, ca).NotAfter.Unix(); got != want {
		t.Errorf("certificate expiry metric = %d; want %d", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := maps.Clone(s.env) // the container's environment, with the port the gateway got
	e["MASKGATE_ADDR"] = s.addr
	if err := healthcheck(ctx, environment(e)); err != nil {
		t.Errorf("healthcheck over TLS: %v", err)
	}
	delete(e, "MASKGATE_TLS_CERT_FILE")
	delete(e, "MASKGATE_TLS_KEY_FILE")
	if err := healthcheck(ctx, environment(e)); err == nil {
		t.Error("healthcheck in plain HTTP passed against the TLS listener")
	}
}

// TestTLSCertificateIsReloadedWhenRenewed renews the certificate on disk, as
// cert-manager does, and checks that the next connection gets the new one, while a
// renewal caught halfway (a new certificate beside the old key) keeps the one in use.
func TestTLSCertificateIsReloadedWhenRenewed(t *testing.T) {
	ca, certFile, keyFile := writeTestPKI(t)
	s := startTLS(t, testkit.NewSim(t), ca, certFile, keyFile)
	if got := served(t, s.addr, ca).SerialNumber.Int64(); got != 2 {
		t.Fatalf("served serial %d; want 2", got)
	}

	renewed := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	certExpiry(t, s) // a scraper's connection, kept alive: the next scrape makes no handshake
	ca.issue(t, certFile, keyFile, 3, time.Now().Add(-time.Minute), renewed)
	// A scrape reads the files too: the metric shows the renewal before any handshake.
	if got := certExpiry(t, s); got != renewed.Unix() {
		t.Errorf("certificate expiry metric = %d; want the renewed certificate's %d", got, renewed.Unix())
	}
	if got := served(t, s.addr, ca).SerialNumber.Int64(); got != 3 {
		t.Fatalf("after renewal, served serial %d; want 3", got)
	}
	if l := s.logLine(t, "TLS certificate reloaded"); l["expires_at"] != renewed.UTC().Format(time.RFC3339) {
		t.Errorf("reload line: %v", l)
	}

	// Halfway: the new certificate is written, its key not yet; every handshake
	// meanwhile gets the one in use, and the pair that does not load is logged once.
	const notLoaded = "TLS certificate files changed but do not load as a pair; still serving the previous certificate"
	nextKey := keyFile + ".next"
	ca.issue(t, certFile, nextKey, 4, time.Now().Add(-time.Minute), renewed)
	for range 3 {
		if got := served(t, s.addr, ca).SerialNumber.Int64(); got != 3 {
			t.Fatalf("with a certificate that does not match the key, served serial %d; want 3, the one in use", got)
		}
	}
	l := s.logLine(t, notLoaded)
	if l["level"] != "error" || !strings.Contains(l["error"].(string), "private key does not match") {
		t.Errorf("failed reload line: %v", l)
	}
	// Then its key, the certificate unchanged since the last look: the pair loads.
	if err := os.Rename(nextKey, keyFile); err != nil {
		t.Fatal(err)
	}
	if got := served(t, s.addr, ca).SerialNumber.Int64(); got != 4 {
		t.Errorf("once the key was written beside the certificate, served serial %d; want 4", got)
	}
	count := func(msg string) (n int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, l := range s.lines {
			if l["message"] == msg {
				n++
			}
		}
		return n
	}
	testkit.Eventually(t, 20*time.Second, "the second reload's line", func() bool { return count("TLS certificate reloaded") == 2 })
	if n := count(notLoaded); n != 1 { // the lines come in order: all of the halfway's are in
		t.Errorf("the pair that did not load was logged %d times over 3 handshakes; want once", n)
	}

	// A certificate not valid yet (a clock behind the issuer's) is served, and said loudly.
	notBefore := time.Now().Add(time.Hour).Truncate(time.Second)
	ca.issue(t, certFile, keyFile, 6, notBefore, renewed)
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true}) // the test looks at what is served
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 6 {
		t.Errorf("served serial %d; want 6, the certificate on disk", got)
	}
	conn.Close()
	l = s.logLineWith(t, "TLS certificate reloaded", map[string]any{"level": "error"})
	if want := "the certificate is not valid before " + notBefore.UTC().Format(time.RFC3339); l["level"] != "error" || l["error"] != want {
		t.Errorf("reload of a certificate not valid yet: %v; want level error and %q", l, want)
	}
}

func TestTLSConfiguration(t *testing.T) {
	ca, certFile, keyFile := writeTestPKI(t)
	otherKey := filepath.Join(t.TempDir(), "other.key")
	ca.issue(t, "", otherKey, 9, time.Now(), time.Now().Add(time.Hour))
	keyPEM, _ := os.ReadFile(keyFile)
	keyBody := strings.Split(string(keyPEM), "\n")[1]
	sim := testkit.NewSim(t)
	for _, c := range []struct {
		name, cert, key, want string
	}{
		{"certificate alone", certFile, "", "MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE must be set together"},
		{"key alone", "", keyFile, "MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE must be set together"},
		{"missing file", certFile, keyFile + ".gone", "no such file"},
		{"key of another certificate", certFile, otherKey, "private key does not match public key"},
		{"key for a certificate", keyFile, keyFile, "MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE: tls:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := env(sim, "p")
			e["MASKGATE_TLS_CERT_FILE"], e["MASKGATE_TLS_KEY_FILE"] = c.cert, c.key
			_, err := loadConfig(environment(e))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("loadConfig = %v; want it to say %q", err, c.want)
			}
			if strings.Contains(err.Error(), keyBody) {
				t.Errorf("the error shows the private key: %v", err)
			}
		})
	}
}

// The start-up line names the certificate served, and is an error when it has expired.
func TestTLSCertificateIsLoggedAtStartUp(t *testing.T) {
	ca, certFile, keyFile := writeTestPKI(t)
	expired := time.Now().Add(-time.Minute).Truncate(time.Second)
	ca.issue(t, certFile, keyFile, 8, expired.Add(-time.Hour), expired)
	var out strings.Builder
	if _, err := newServingCert(tlsFiles{certFile, keyFile}, zerolog.New(&out), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(out.String()), &line); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	want := map[string]any{"level": "error", "message": "TLS certificate loaded", "names": "127.0.0.1",
		"expires_at": expired.UTC().Format(time.RFC3339), "error": "the certificate expired at " + expired.UTC().Format(time.RFC3339)}
	if !matches(line, want) {
		t.Errorf("start-up line %v; want %v", line, want)
	}
}

// A certificate file may carry the chain after the leaf: all of it is served.
func TestTLSCertificateFileMayCarryTheChain(t *testing.T) {
	ca, certFile, keyFile := writeTestPKI(t)
	leaf, _ := os.ReadFile(certFile)
	chain, _ := os.ReadFile(ca.file) // standing in for an intermediate
	if err := os.WriteFile(certFile, append(leaf, chain...), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startTLS(t, testkit.NewSim(t), ca, certFile, keyFile)
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates; len(got) != 2 || !got[1].Equal(ca.cert) {
		t.Errorf("served %d certificates; want the leaf and the one after it in the file", len(got))
	}
}

// The names a certificate is logged and checked for: its DNS names and addresses, or
// its subject's common name when it has neither (an older certificate).
func TestCertNames(t *testing.T) {
	for want, leaf := range map[string]*x509.Certificate{
		"gw.example.com, 10.0.0.7": {DNSNames: []string{"gw.example.com"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}, Subject: pkix.Name{CommonName: "maskgate"}},
		"legacy.example.com":       {Subject: pkix.Name{CommonName: "legacy.example.com"}},
		"10.0.0.8":                 {IPAddresses: []net.IP{net.ParseIP("10.0.0.8")}, Subject: pkix.Name{CommonName: "maskgate"}},
	} {
		if got := certNames(&tls.Certificate{Leaf: leaf}); got != want {
			t.Errorf("certNames = %q; want %q", got, want)
		}
	}
}
