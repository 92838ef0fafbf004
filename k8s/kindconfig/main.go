// Command kindconfig checks kind cluster configurations against kind's own v1alpha4
// types: strict decoding (an unknown or misspelled field is an error, naming it), then
// the rules a game-day cluster needs. Used by the test suite; exits 1 on the first bad
// file.
package main

import (
	"fmt"
	"net"
	"os"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return err
	}
	if cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
		return fmt.Errorf("kind/apiVersion: want Cluster kind.x-k8s.io/v1alpha4, got %s %s",
			cfg.Kind, cfg.APIVersion)
	}
	v1alpha4.SetDefaultsCluster(&cfg)
	controlPlanes := 0
	for i, node := range cfg.Nodes {
		switch node.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			return fmt.Errorf("nodes[%d].role: %q is neither control-plane nor worker", i, node.Role)
		}
		for j, m := range node.ExtraPortMappings {
			where := fmt.Sprintf("nodes[%d].extraPortMappings[%d]", i, j)
			if m.ContainerPort <= 0 || m.ContainerPort > 65535 || m.HostPort < 0 || m.HostPort > 65535 {
				return fmt.Errorf("%s: ports must be within 1-65535", where)
			}
			if ip := net.ParseIP(m.ListenAddress); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("%s.listenAddress: %q is not a loopback address", where, m.ListenAddress)
			}
			switch m.Protocol {
			case v1alpha4.PortMappingProtocolTCP, v1alpha4.PortMappingProtocolUDP, v1alpha4.PortMappingProtocolSCTP:
			default:
				return fmt.Errorf("%s.protocol: %q is not TCP, UDP or SCTP", where, m.Protocol)
			}
		}
	}
	if controlPlanes != 1 {
		return fmt.Errorf("nodes: want one control-plane node, got %d", controlPlanes)
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kindconfig FILE...")
		os.Exit(2)
	}
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
		fmt.Printf("%s: valid kind cluster config\n", path)
	}
}
