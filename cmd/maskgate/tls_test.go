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

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 signed by it.
func writeTestPKI(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "maskgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server.key", "EC PRIVATE KEY", keyDER)
}

// TestRedisOverTLS runs a replica against a Redis that only speaks TLS, trusting the
// test CA the way a container would (SSL_CERT_FILE), with certificate verification on.
func TestRedisOverTLS(t *testing.T) {
	caFile, certFile, keyFile := writeTestPKI(t)
	r := testkit.StartRedisTLS(t, certFile, keyFile, caFile)
	sim := testkit.NewSim(t)
	sim.StartCall("79", false, true)
	e := env(sim, "mgtls")
	e["MASKGATE_REDIS_URL"] = "rediss://127.0.0.1:" + strconv.Itoa(r.Port) + "/0"
	// Without the CA the server's certificate is refused: verification is on.
	untrusting := spawn(t, e)
	if status := readyz(t, untrusting); status != http.StatusServiceUnavailable {
		t.Errorf("readyz without trusting the CA = %d; want 503", status)
	}
	e["SSL_CERT_FILE"] = caFile
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
