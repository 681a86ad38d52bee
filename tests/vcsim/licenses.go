package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// addLicenses puts realistic licences beside the simulator's evaluation licence: one
// over-allocated, one expired, one per-core subscription that expires soon.
func addLicenses(ref *types.ManagedObjectReference) {
	manager := simulator.Map.Get(*ref).(*simulator.LicenseManager)
	expiry := func(days int) types.KeyAnyValue {
		return types.KeyAnyValue{Key: "expirationDate", Value: time.Now().UTC().AddDate(0, 0, days).Truncate(time.Second)}
	}
	manager.Licenses = append(manager.Licenses,
		types.LicenseManagerLicenseInfo{
			LicenseKey: "AAAAA-BBBBB-CCCCC-DDDDD-7R4H9", EditionKey: "esxEnterprisePlus",
			Name: "VMware vSphere 7 Enterprise Plus", Total: 12, Used: 14, CostUnit: "cpuPackage",
		},
		types.LicenseManagerLicenseInfo{
			LicenseKey: "AAAAA-BBBBB-CCCCC-DDDDD-K81P2", EditionKey: "esxStandard",
			Name: "VMware vSphere 7 Standard (term)", Total: 8, Used: 0, CostUnit: "cpuPackage",
			Properties: []types.KeyAnyValue{expiry(-30)},
		},
		types.LicenseManagerLicenseInfo{
			LicenseKey: "AAAAA-BBBBB-CCCCC-DDDDD-8C0R3", EditionKey: "esx.vcf.core",
			Name: "VMware vSphere 8 Enterprise Plus (per core)", Total: 640, Used: 192, CostUnit: "core",
			Properties: []types.KeyAnyValue{expiry(20)},
		},
	)
}

// serverCertificate makes a self-signed P-256 certificate for 127.0.0.1: the one httptest
// ships is 1024-bit RSA, which OpenSSL refuses as too weak. With rsaBits > 0 it makes an
// RSA key of that length instead (1024 shows what a client says about such a certificate).
func serverCertificate(rsaBits int) (tls.Certificate, []byte, error) {
	var key crypto.Signer
	var err error
	if rsaBits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial := big.NewInt(time.Now().UnixNano())
	template := x509.Certificate{
		SerialNumber: serial,
		// a subject of its own: several simulators' certificates share one CA bundle in tests
		Subject:               pkix.Name{CommonName: "vcsim-auditor-" + serial.String()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	return pair, certPEM, err
}

func writeCert(certPEM []byte, path string) error {
	return os.WriteFile(path, certPEM, 0o644)
}
