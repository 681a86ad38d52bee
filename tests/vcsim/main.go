// Command vcsim-auditor runs govmomi's vCenter simulator with an inventory shaped for
// auditor's tests: several ESXi versions, VMs with old hardware and end-of-life guests,
// hostile names, port groups with weak security policy and VLAN 4095, licences, and the
// settings the vSphere Security Configuration Guide checks (see hardening.go). With -esx it
// is a standalone ESXi host instead (govmomi's ESX model, apiType HostAgent), whose
// licenseAssignmentManager cannot be read: the request fails, the server lives on.
//
// It prints one JSON line {"url": ..., "cert": ...} on stdout once serving, and runs until
// stdin closes or it is killed. With -stop-on METHOD[:N] it stops itself (SIGSTOP) when the
// Nth request of that SOAP method arrives, before answering it: a vCenter that hangs
// mid-session (the kernel still accepts connections, nothing answers) until SIGCONT.
// Built by the tests with GOPATH=/usr/share/gocode GO111MODULE=off go build (Debian's
// golang-github-vmware-govmomi-dev).
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func boolPtr(v bool) *bool { return &v }

// randomUUID is a version 4 UUID, as vCenter's installer makes its instance UUID.
func randomUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// the shapes each host and VM gets, in inventory order (cycled)
var esxiVersions = []struct{ version, build string }{
	{"6.7.0", "17700523"}, {"7.0.3", "21313628"}, {"8.0.2", "22380479"}, {"8.0.3", "24022510"},
}

var guests = []struct{ id, name, hardware, tools string }{
	{"windows8Server64Guest", "Microsoft Windows Server 2012 R2 (64-bit)", "vmx-08", "guestToolsTooOld"},
	{"windows2019srv_64Guest", "Microsoft Windows Server 2019 (64-bit)", "vmx-19", "guestToolsCurrent"},
	{"centos7_64Guest", "CentOS 7 (64-bit)", "vmx-13", "guestToolsNeedUpgrade"},
	{"rhel8_64Guest", "Red Hat Enterprise Linux 8 (64-bit)", "vmx-19", "guestToolsCurrent"},
	{"ubuntu64Guest", "Ubuntu 22.04.4 LTS", "vmx-21", "guestToolsCurrent"},
}

func shapeHosts(sshHosts int) {
	for i, entity := range simulator.Map.All("HostSystem") {
		host := entity.(*simulator.HostSystem)
		v := esxiVersions[i%len(esxiVersions)]
		product := types.AboutInfo{
			Name: "VMware ESXi", FullName: fmt.Sprintf("VMware ESXi %s build-%s", v.version, v.build),
			Vendor: "VMware, Inc.", Version: v.version, Build: v.build, ApiType: "HostAgent",
			ApiVersion: v.version, ProductLineId: "embeddedEsx", OsType: "vmnix-x86",
		}
		host.Summary.Config.Product = &product
		// each host gets its own config: the simulator's hosts share one template
		config := *host.Config
		config.Product = product
		lockdown := types.HostLockdownModeLockdownNormal
		if i%2 == 0 {
			lockdown = types.HostLockdownModeLockdownDisabled
		}
		config.LockdownMode = lockdown
		config.Service = &types.HostServiceInfo{Service: []types.HostService{
			{Key: "TSM-SSH", Label: "SSH", Running: i < sshHosts, Policy: "off"},
			{Key: "TSM", Label: "ESXi Shell", Running: false, Policy: "off"},
			{Key: "ntpd", Label: "NTP Daemon", Running: i != 1, Policy: "on"},
		}}
		servers := []string{"ntp1.corp.example", "ntp2.corp.example"}
		if i == 1 {
			servers = nil
		}
		config.DateTimeInfo = &types.HostDateTimeInfo{
			TimeZone:  types.HostDateTimeSystemTimeZone{Key: "UTC", Name: "UTC", Description: "UTC"},
			NtpConfig: &types.HostNtpConfig{Server: servers},
		}
		logHost := "ssl://syslog.corp.example:6514"
		if i == 1 {
			logHost = ""
		}
		config.Option = []types.BaseOptionValue{
			&types.OptionValue{Key: "Syslog.global.logHost", Value: logHost},
			&types.OptionValue{Key: "UserVars.ESXiShellTimeOut", Value: int32(900)},
			&types.OptionValue{Key: "Security.AccountLockFailures", Value: int32(5)},
			&types.OptionValue{Key: "Config.HostAgent.plugins.solo.webServices.secret", Value: "not-for-snapshots"},
		}
		if config.Network != nil {
			network := *config.Network
			groups := make([]types.HostPortGroup, len(network.Portgroup))
			for j, group := range network.Portgroup {
				security := types.HostNetworkSecurityPolicy{
					AllowPromiscuous: boolPtr(i == 0 && j == 0), MacChanges: boolPtr(false), ForgedTransmits: boolPtr(false),
				}
				group.ComputedPolicy.Security = &security
				groups[j] = group
			}
			network.Portgroup = groups
			config.Network = &network
		}
		hardenHost(i, &config)
		host.Config = &config
	}
}

func shapeVMs(hostile string) {
	for i, entity := range simulator.Map.All("VirtualMachine") {
		vm := entity.(*simulator.VirtualMachine)
		g := guests[i%len(guests)]
		if i == 0 {
			g = guests[2] // the hostile name goes on a VM with findings
			vm.Name = hostile
			vm.Config.Name = hostile
			vm.Summary.Config.Name = hostile
		}
		vm.Config.GuestId = g.id
		vm.Config.GuestFullName = g.name
		vm.Config.Version = g.hardware
		vm.Summary.Config.GuestId = g.id
		vm.Summary.Config.GuestFullName = g.name
		vm.Guest.GuestFullName = g.name
		vm.Guest.GuestId = g.id
		vm.Guest.ToolsVersionStatus2 = g.tools
		// guest.toolsVersion encodes major<<10 | minor<<5 | patch: 12.5.1 when current, else 11.3.5
		vm.Guest.ToolsVersion = "11365"
		if g.tools == "guestToolsCurrent" {
			vm.Guest.ToolsVersion = "12449"
		}
		vm.Guest.ToolsRunningStatus = "guestToolsRunning"
		hardenVM(i, vm)
	}
}

// shapeSwitches lists each switch's uplink port group in config.uplinkPortgroup, as a real
// vCenter does (the simulator leaves it empty).
func shapeSwitches() {
	for _, entity := range simulator.Map.All("DistributedVirtualSwitch") {
		dvs := entity.(*simulator.DistributedVirtualSwitch)
		config := dvs.Config.GetDVSConfigInfo()
		for _, ref := range dvs.Portgroup {
			pg, ok := simulator.Map.Get(ref).(*simulator.DistributedVirtualPortgroup)
			if ok && strings.Contains(pg.Name, "DVUplinks") {
				config.UplinkPortgroup = append(config.UplinkPortgroup, ref)
			}
		}
	}
}

// shapePortgroups picks port groups by name: the registry's order is a Go map's.
func shapePortgroups() {
	for i, entity := range simulator.Map.All("DistributedVirtualPortgroup") {
		pg := entity.(*simulator.DistributedVirtualPortgroup)
		if strings.Contains(pg.Name, "DVUplinks") {
			continue // uplink port groups trunk every VLAN by design
		}
		setting, ok := pg.Config.DefaultPortConfig.(*types.VMwareDVSPortSetting)
		if !ok || setting == nil {
			setting = &types.VMwareDVSPortSetting{}
		}
		copied := *setting
		vlan := int32(100 + i)
		promiscuous := false
		switch {
		case strings.HasSuffix(pg.Name, "_DVPG0"):
			promiscuous = true
		case strings.HasSuffix(pg.Name, "_DVPG1"):
			vlan = 4095
		}
		copied.Vlan = &types.VmwareDistributedVirtualSwitchVlanIdSpec{VlanId: vlan}
		copied.SecurityPolicy = &types.DVSSecurityPolicy{
			AllowPromiscuous: &types.BoolPolicy{Value: boolPtr(promiscuous)},
			MacChanges:       &types.BoolPolicy{Value: boolPtr(false)},
			ForgedTransmits:  &types.BoolPolicy{Value: boolPtr(false)},
		}
		pg.Config.DefaultPortConfig = &copied
	}
}

// stopOn wraps the simulator's handler: when the nth request whose SOAP body calls method
// arrives, the whole process stops itself, as a hung vCenter does, before answering it.
func stopOn(next http.Handler, method string, nth int) http.Handler {
	call := regexp.MustCompile(`<(\w+:)?` + regexp.QuoteMeta(method) + `[\s>/]`)
	var mu sync.Mutex
	seen := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if call.Match(body) {
				mu.Lock()
				seen++
				stop := seen == nth
				mu.Unlock()
				if stop {
					fmt.Fprintf(os.Stderr, "vcsim-auditor: stopping on %s #%d\n", method, nth)
					stopProcess()
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// stopProcess sends SIGSTOP to this thread, which then stops the whole process before it
// returns from the system call. Sent to the process, the signal goes to the main thread,
// and this one could answer the request before the stop reaches it.
func stopProcess() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = syscall.Tgkill(syscall.Getpid(), syscall.Gettid(), syscall.SIGSTOP)
}

// parseStopOn reads METHOD or METHOD:N (N counts from 1).
func parseStopOn(text string) (string, int, error) {
	method, count, found := strings.Cut(text, ":")
	nth := 1
	if found {
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 {
			return "", 0, fmt.Errorf("-stop-on %q: N must be a whole number of at least 1", text)
		}
		nth = n
	}
	return method, nth, nil
}

func main() {
	vms := flag.Int("vms", 4, "virtual machines per resource pool")
	clusterHosts := flag.Int("cluster-hosts", 3, "hosts per cluster")
	clusters := flag.Int("clusters", 1, "clusters")
	portgroups := flag.Int("portgroups", 4, "distributed port groups")
	user := flag.String("user", "auditor", "login user")
	password := flag.String("password", "", "login password (required)")
	certOut := flag.String("cert-out", "", "write the server certificate (PEM) here")
	delay := flag.Int("delay-ms", 0, "delay every RetrievePropertiesEx/ContinueRetrievePropertiesEx by this much")
	latency := flag.Int("latency-ms", 0, "delay every SOAP call by this much (network and vCenter service time)")
	hostile := flag.String("hostile-name", "<img src=x onerror=alert(1)>", "name of the first VM")
	stopOnCall := flag.String("stop-on", "", "METHOD or METHOD:N: stop the process (SIGSTOP) when the Nth call of this SOAP method arrives")
	esx := flag.Bool("esx", false, "a standalone ESXi host (govmomi's ESX model, apiType HostAgent) instead of a vCenter")
	instanceUUID := flag.String("instance-uuid", "", "the vCenter's about.instanceUuid (default: a random one, as each vCenter has its own)")
	rsaBits := flag.Int("rsa-bits", 0, "serve a self-signed RSA certificate with a key this long instead of P-256 (1024: what OpenSSL refuses)")
	flag.Parse()
	if *password == "" {
		fmt.Fprintln(os.Stderr, "vcsim-auditor: -password is required")
		os.Exit(2)
	}
	stopMethod, stopNth, err := parseStopOn(*stopOnCall)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim-auditor:", err)
		os.Exit(2)
	}

	var model *simulator.Model
	if *esx {
		model = simulator.ESX()
		model.Machine = *vms
		// the about info of the host itself: shapeHosts gives its one host the first version
		v := esxiVersions[0]
		model.ServiceContent.About.Version = v.version
		model.ServiceContent.About.Build = v.build
		model.ServiceContent.About.FullName = fmt.Sprintf("VMware ESXi %s build-%s", v.version, v.build)
	} else {
		model = simulator.VPX()
		model.Datacenter = 1
		model.Cluster = *clusters
		model.ClusterHost = *clusterHosts
		model.Host = 1
		model.Portgroup = *portgroups
		model.Machine = *vms
		model.ServiceContent.About.Version = "7.0.3"
		model.ServiceContent.About.Build = "21477706"
		model.ServiceContent.About.FullName = "VMware vCenter Server 7.0.3 build-21477706"
		// govmomi gives every simulator the same one; each vCenter has its own
		model.ServiceContent.About.InstanceUuid = *instanceUUID
		if *instanceUUID == "" {
			model.ServiceContent.About.InstanceUuid = randomUUID()
		}
	}
	model.DelayConfig.Delay = *latency
	if *delay > 0 {
		model.DelayConfig.MethodDelay = map[string]int{
			"RetrievePropertiesEx": *delay, "ContinueRetrievePropertiesEx": *delay,
		}
	}
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim-auditor:", err)
		os.Exit(1)
	}
	defer model.Remove()

	shapeHosts(1)
	shapeVMs(*hostile)
	shapePortgroups()
	shapeSwitches()
	if !*esx {
		hardenSwitches() // after shapeSwitches, which finds them by their simulator type
		addVcenterSettings(model.ServiceContent.Setting)
	}
	addLicenses(model.ServiceContent.LicenseManager)
	installPagingCollector(model.ServiceContent.PropertyCollector)

	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(*user, *password)}
	certificate, certPEM, err := serverCertificate(*rsaBits)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim-auditor:", err)
		os.Exit(1)
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{certificate}}
	server := model.Service.NewServer()
	defer server.Close()
	if stopMethod != "" {
		// set before the URL is printed: no client knows the address yet
		server.Config.Handler = stopOn(server.Config.Handler, stopMethod, stopNth)
	}

	certPath := ""
	if *certOut != "" {
		if err := writeCert(certPEM, *certOut); err != nil {
			fmt.Fprintln(os.Stderr, "vcsim-auditor:", err)
			os.Exit(1)
		}
		certPath = *certOut
	}
	address := *server.URL
	address.User = nil // the password is the tests' to know, not the log's
	line, _ := json.Marshal(map[string]string{"url": address.String(), "cert": certPath})
	fmt.Println(string(line))
	os.Stdout.Sync()

	// serve until stdin closes (the test ends) or the process is killed
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	time.Sleep(10 * time.Millisecond)
}
