package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/maskgate/maskgate/internal/testkit"
)

// testCA is a certificate authority for the tests' TLS servers.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate, PEM
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "maskgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(t.TempDir(), "ca.pem"), pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes a certificate for 127.0.0.1 valid from notBefore to notAfter to
// certFile, and its key to keyFile, each through a rename, as a mounted secret changes.
func (ca *testCA) issue(t *testing.T, certFile, keyFile string, serial int64, notBefore, notAfter time.Time) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: notBefore, NotAfter: notAfter,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	if certFile != "" {
		writePEM(t, certFile, "CERTIFICATE", der)
	}
	if keyFile != "" {
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	}
}

// writePEM replaces path with one PEM block, atomically.
func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 signed by it, valid
// for an hour.
func writeTestPKI(t *testing.T) (ca *testCA, certFile, keyFile string) {
	t.Helper()
	ca = newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	ca.issue(t, certFile, keyFile, 2, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	return ca, certFile, keyFile
}

// TestRedisOverTLS runs a replica against a Redis that only speaks TLS, trusting the
// test CA the way a container would (SSL_CERT_FILE), with certificate verification on.
func TestRedisOverTLS(t *testing.T) {
	ca, certFile, keyFile := writeTestPKI(t)
	r := testkit.StartRedisTLS(t, certFile, keyFile, ca.file)
	sim := testkit.NewSim(t)
	sim.StartCall("79", false, true)
	e := env(sim, "mgtls")
	e["MASKGATE_REDIS_URL"] = "rediss://127.0.0.1:" + strconv.Itoa(r.Port) + "/0"
	// Without the CA the server's certificate is refused: verification is on.
	untrusting := spawn(t, e)
	if status := readyz(t, untrusting); status != http.StatusServiceUnavailable {
		t.Errorf("readyz without trusting the CA = %d; want 503", status)
	}
	e["SSL_CERT_FILE"] = ca.file
	p := spawn(t, e)
	token := callerToken(t, "recordings:mask recordings:read")
	if status := readyz(t, p); status != 200 {
		t.Fatalf("readyz over TLS Redis = %d", status)
	}
	if status := p.request(t, "POST", "/v1/agents/79/mask", token); status != 200 {
		t.Fatalf("mask over TLS Redis = %d", status)
	}
	if status := p.request(t, "GET", "/v1/agents/79/mask", token); status != 200 {
		t.Errorf("get over TLS Redis = %d", status)
	}
}

func readyz(t *testing.T, p *process) int {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
