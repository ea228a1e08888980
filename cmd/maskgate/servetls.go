package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// tlsFiles are the API listener's certificate chain and private key (PEM), from
// MASKGATE_TLS_CERT_FILE and MASKGATE_TLS_KEY_FILE; both empty: plain HTTP.
type tlsFiles struct{ cert, key string }

func (f tlsFiles) enabled() bool { return f.cert != "" }

// read reads both files as they are on disk now.
func (f tlsFiles) read() (pair [2][]byte, err error) {
	if pair[0], err = os.ReadFile(f.cert); err != nil {
		return pair, err
	}
	pair[1], err = os.ReadFile(f.key)
	return pair, err
}

// load reads the pair and parses it.
func (f tlsFiles) load() ([2][]byte, *tls.Certificate, error) {
	pair, err := f.read()
	if err != nil {
		return pair, nil, err
	}
	cert, err := parsePair(pair)
	return pair, cert, err
}

func parsePair(pair [2][]byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(pair[0], pair[1])
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// servingCert is the certificate the API listener serves. Its files are read again at
// each TLS handshake and each metrics scrape (a few kilobytes, next to a handshake's
// cryptography), and when either has changed the pair is parsed again, so that a
// certificate renewed on disk (by cert-manager, Vault Agent or a mounted Kubernetes
// secret) is served without a restart. A pair that does not load, such as a key not yet
// written beside its new certificate, is logged once and the certificate in use kept
// until the files change again.
type servingCert struct {
	files tlsFiles
	log   zerolog.Logger

	mu   sync.Mutex
	seen [2][]byte // the files when last read
	cert *tls.Certificate
}

// newServingCert loads the pair and exports when the served certificate expires.
func newServingCert(files tlsFiles, log zerolog.Logger, reg prometheus.Registerer) (*servingCert, error) {
	pair, cert, err := files.load()
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	s := &servingCert{files: files, log: log, seen: pair, cert: cert}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "maskgate_tls_certificate_expiration_timestamp_seconds",
		Help: "When the certificate the API listener serves expires, in Unix time.",
	}, func() float64 { return float64(s.current().Leaf.NotAfter.Unix()) }))
	s.logServed("TLS certificate loaded")
	return s, nil
}

// current is the certificate to serve, parsed again first when its files have changed.
func (s *servingCert) current() *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	pair, err := s.files.read()
	if bytes.Equal(pair[0], s.seen[0]) && bytes.Equal(pair[1], s.seen[1]) {
		return s.cert
	}
	s.seen = pair
	var cert *tls.Certificate
	if err == nil {
		cert, err = parsePair(pair)
	}
	if err != nil {
		s.log.Error().Err(err).Time("in_use_expires_at", s.cert.Leaf.NotAfter).
			Msg("TLS certificate files changed but do not load as a pair; still serving the previous certificate")
		return s.cert
	}
	s.cert = cert
	s.logServed("TLS certificate reloaded")
	return s.cert
}

// logServed logs the certificate now served: an error when it is not valid now.
func (s *servingCert) logServed(msg string) {
	leaf := s.cert.Leaf
	ev := s.log.Info()
	if err := validity(leaf, time.Now()); err != nil {
		ev = s.log.Error().Err(err)
	}
	ev.Str("names", certNames(s.cert)).Time("expires_at", leaf.NotAfter).Msg(msg)
}

// config is the API listener's TLS configuration: TLS 1.2 at least (PCI DSS), Go's
// cipher suites, HTTP/2 and HTTP/1.1 (http.Server.ServeTLS adds them).
func (s *servingCert) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.current(), nil
		},
	}
}

// validity says what is wrong with a certificate at now, if anything.
func validity(leaf *x509.Certificate, now time.Time) error {
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// certNames are the names a certificate is for: its DNS names and IP addresses, or its
// subject's common name when it has none.
func certNames(c *tls.Certificate) string {
	names := slices.Clone(c.Leaf.DNSNames)
	for _, ip := range c.Leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return c.Leaf.Subject.CommonName
	}
	return strings.Join(names, ", ")
}
