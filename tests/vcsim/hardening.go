package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// What the Security Configuration Guide's controls read, shaped where vcsim 0.24 models it:
// host firewall allow-lists, an iSCSI adapter with CHAP, Active Directory membership, VM
// advanced settings, boot options, removable devices, distributed switch policies and
// vCenter advanced settings. Secrets sit beside the allow-listed values so the tests can
// see that the collector leaves them out.

const chapSecret = "chap-secret-not-for-snapshots"

// hardenHost gives host i its firewall allow-list, iSCSI adapter and directory membership.
// config is the host's own copy (shapeHosts copies the template first).
func hardenHost(i int, config *types.HostConfigInfo) {
	if config.Firewall != nil {
		firewall := *config.Firewall
		rulesets := make([]types.HostFirewallRuleset, len(firewall.Ruleset))
		copy(rulesets, firewall.Ruleset)
		for j := range rulesets {
			if rulesets[j].Key == "sshServer" && i == 0 {
				rulesets[j].Enabled = true
				rulesets[j].AllowedHosts = &types.HostFirewallRulesetIpList{
					AllIp:     false,
					IpAddress: []string{"192.0.2.10"},
					IpNetwork: []types.HostFirewallRulesetIpNetwork{{Network: "10.20.0.0", PrefixLength: 16}},
				}
			}
		}
		firewall.Ruleset = rulesets
		if i == 0 {
			firewall.DefaultPolicy = types.HostFirewallDefaultPolicy{
				IncomingBlocked: types.NewBool(false), OutgoingBlocked: types.NewBool(true),
			}
		}
		config.Firewall = &firewall
	}

	if config.StorageDevice != nil {
		storage := *config.StorageDevice
		adapters := append([]types.BaseHostHostBusAdapter{}, storage.HostBusAdapter...)
		adapters = append(adapters, &types.HostInternetScsiHba{
			HostHostBusAdapter: types.HostHostBusAdapter{
				Key: "key-vim.host.InternetScsiHba-vmhba65", Device: "vmhba65", Model: "iSCSI Software Adapter",
				Driver: "iscsi_vmk", Status: "online",
			},
			IsSoftwareBased: true,
			IScsiName:       "iqn.1998-01.com.vmware:esx-auditor",
			AuthenticationProperties: types.HostInternetScsiHbaAuthenticationProperties{
				ChapAuthEnabled: i == 0, ChapName: "esx-initiator", ChapSecret: chapSecret,
				ChapAuthenticationType: "chapPreferred", ChapInherited: types.NewBool(false),
				MutualChapName: "array-target", MutualChapSecret: chapSecret,
				MutualChapAuthenticationType: "chapProhibited", MutualChapInherited: types.NewBool(false),
			},
		})
		storage.HostBusAdapter = adapters
		config.StorageDevice = &storage
	}

	joined, status := "", ""
	if i == 0 {
		joined, status = "corp.example", "ok"
	}
	config.AuthenticationManagerInfo = &types.HostAuthenticationManagerInfo{
		AuthConfig: []types.BaseHostAuthenticationStoreInfo{
			&types.HostLocalAuthenticationInfo{HostAuthenticationStoreInfo: types.HostAuthenticationStoreInfo{Enabled: true}},
			&types.HostActiveDirectoryInfo{
				HostDirectoryStoreInfo:         types.HostDirectoryStoreInfo{HostAuthenticationStoreInfo: types.HostAuthenticationStoreInfo{Enabled: i == 0}},
				JoinedDomain:                   joined,
				DomainMembershipStatus:         status,
				SmartCardAuthenticationEnabled: types.NewBool(false),
			},
		},
	}

	if i == 0 {
		config.Option = append(config.Option,
			&types.OptionValue{Key: "Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd", Value: true},
			&types.OptionValue{Key: "Config.HostAgent.plugins.hostsvc.esxAdminsGroup", Value: "ESX Admins"},
		)
	}
}

// hardenVM gives VM i advanced settings, boot options and removable devices. The first VM
// gets the weak settings (BIOS, logging off, booting from its CD-ROM, a floppy image, a
// serial port writing to a file, a USB controller), the second the strong ones. (vcsim
// gives every VM a CD-ROM drive already.)
func hardenVM(i int, vm *simulator.VirtualMachine) {
	config := vm.Config
	extra := append([]types.BaseOptionValue{}, config.ExtraConfig...)
	switch i {
	case 0:
		extra = append(extra,
			&types.OptionValue{Key: "isolation.tools.copy.disable", Value: "FALSE"},
			&types.OptionValue{Key: "ethernet0.filter0.name", Value: "dvfilter-maclearn"},
			&types.OptionValue{Key: "guestinfo.appliance.root.password", Value: "vm-secret-not-for-snapshots"},
		)
		config.Firmware = string(types.GuestOsDescriptorFirmwareTypeBios)
		config.BootOptions = &types.VirtualMachineBootOptions{
			EfiSecureBootEnabled: types.NewBool(false), EnterBIOSSetup: types.NewBool(false), BootDelay: 0,
			BootOrder: []types.BaseVirtualMachineBootOptionsBootableDevice{
				&types.VirtualMachineBootOptionsBootableCdromDevice{},
			},
		}
		config.Flags.EnableLogging = types.NewBool(false)
		config.MigrateEncryption = "disabled"
		devices := append([]types.BaseVirtualDevice{}, config.Hardware.Device...)
		devices = append(devices,
			&types.VirtualFloppy{VirtualDevice: types.VirtualDevice{
				Key: 8000, ControllerKey: 400, UnitNumber: types.NewInt32(0),
				DeviceInfo:  &types.Description{Label: "Floppy drive 1", Summary: "Image [LocalDS_0] floppy/keys.flp"},
				Backing:     &types.VirtualFloppyImageBackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[LocalDS_0] floppy/keys.flp"}},
				Connectable: &types.VirtualDeviceConnectInfo{StartConnected: false, Connected: false, AllowGuestControl: true, Status: "untried"},
			}},
			&types.VirtualSerialPort{VirtualDevice: types.VirtualDevice{
				Key: 9000, ControllerKey: 400, UnitNumber: types.NewInt32(1),
				DeviceInfo:  &types.Description{Label: "Serial port 1", Summary: "File [LocalDS_0] serial.log"},
				Backing:     &types.VirtualSerialPortFileBackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[LocalDS_0] serial.log"}},
				Connectable: &types.VirtualDeviceConnectInfo{StartConnected: true, Connected: true, AllowGuestControl: false, Status: "ok"},
			}, YieldOnPoll: true},
			&types.VirtualUSBController{VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{
				Key: 7000, ControllerKey: 100, UnitNumber: types.NewInt32(22),
				DeviceInfo: &types.Description{Label: "USB controller", Summary: "Auto connect Disabled"},
			}}, AutoConnectDevices: types.NewBool(false), EhciEnabled: types.NewBool(true)},
		)
		config.Hardware.Device = devices
	case 1:
		extra = append(extra,
			&types.OptionValue{Key: "isolation.tools.copy.disable", Value: "TRUE"},
			&types.OptionValue{Key: "isolation.tools.paste.disable", Value: "TRUE"},
			&types.OptionValue{Key: "tools.setInfo.sizeLimit", Value: "1048576"},
		)
		config.Firmware = string(types.GuestOsDescriptorFirmwareTypeEfi)
		config.BootOptions = &types.VirtualMachineBootOptions{EfiSecureBootEnabled: types.NewBool(true)}
		config.Flags.EnableLogging = types.NewBool(true)
		config.MigrateEncryption = "required"
	}
	config.ExtraConfig = extra
}

// hardenSwitches makes every distributed switch what a vCenter makes: a
// VmwareDistributedVirtualSwitch (vcsim registers them as DistributedVirtualSwitch, and a
// property collector only hands VMware switch properties to that type), then gives it link
// discovery, NetFlow (IPFIX), a port mirroring session and a default port policy.
func hardenSwitches() {
	for _, entity := range simulator.Map.All("DistributedVirtualSwitch") {
		dvs := entity.(*simulator.DistributedVirtualSwitch)
		old := dvs.Self
		simulator.Map.Remove(old)
		dvs.Self.Type = "VmwareDistributedVirtualSwitch" // port groups point at &dvs.Self
		simulator.Map.Put(dvs)
		if dvs.Parent != nil {
			if folder, ok := simulator.Map.Get(*dvs.Parent).(*simulator.Folder); ok {
				for j, child := range folder.ChildEntity {
					if child == old {
						folder.ChildEntity[j] = dvs.Self
					}
				}
			}
		}

		config, ok := dvs.Config.(*types.VMwareDVSConfigInfo)
		if !ok {
			continue
		}
		config.MaxMtu = 9000
		config.LinkDiscoveryProtocolConfig = &types.LinkDiscoveryProtocolConfig{Protocol: "lldp", Operation: "both"}
		config.IpfixConfig = &types.VMwareIpfixConfig{
			CollectorIpAddress: "192.0.2.50", CollectorPort: 4739, ObservationDomainId: 1,
			ActiveFlowTimeout: 60, IdleFlowTimeout: 15, SamplingRate: 0, InternalFlowsOnly: false,
		}
		config.VspanSession = []types.VMwareVspanSession{{
			Key: "vspan-1", Name: "mirror-to-ids", Enabled: true, SessionType: "encapsulatedRemoteMirrorSource",
			SourcePortTransmitted: &types.VMwareVspanPort{PortKey: []string{"10"}},
			SourcePortReceived:    &types.VMwareVspanPort{PortKey: []string{"10"}},
			DestinationPort:       &types.VMwareVspanPort{IpAddress: []string{"192.0.2.60"}},
			NormalTrafficAllowed:  true,
		}}
		config.DefaultPortConfig = &types.VMwareDVSPortSetting{
			Vlan: &types.VmwareDistributedVirtualSwitchVlanIdSpec{VlanId: 0},
			SecurityPolicy: &types.DVSSecurityPolicy{
				AllowPromiscuous: &types.BoolPolicy{Value: boolPtr(false)},
				MacChanges:       &types.BoolPolicy{Value: boolPtr(false)},
				ForgedTransmits:  &types.BoolPolicy{Value: boolPtr(true)},
			},
		}
	}
}

// addVcenterSettings puts the guide's vCenter advanced settings among the simulator's own
// (which already hold an SSO private key: config.vpxd.sso.solutionUser.privateKey).
// vpxd.event.syslog.enabled is left out: a vCenter without it is a case to handle.
func addVcenterSettings(ref *types.ManagedObjectReference) {
	manager, ok := simulator.Map.Get(*ref).(*simulator.OptionManager)
	if !ok {
		return
	}
	settings := append([]types.BaseOptionValue{}, manager.Setting...)
	manager.Setting = append(settings,
		&types.OptionValue{Key: "config.log.level", Value: "info"},
		&types.OptionValue{Key: "etc.issue", Value: "Authorised use only."},
		&types.OptionValue{Key: "VirtualCenter.VimPasswordExpirationInDays", Value: int32(30)},
	)
}
