// cnitool drives a CNI network list through libcni, the way the upstream
// cnitool does, so scenario tests exercise the same code path as a runtime.
//
// Usage: cnitool add|check|del <netname> <netns-path>
//
// Environment:
//
//	NETCONFPATH     conf dir holding the network list (default /etc/cni/net.d)
//	CNI_PATH        plugin search path, ':'-separated
//	CNI_ARGS        "K=V;K2=V2" passed to every plugin
//	CAP_ARGS        JSON object of capability args, e.g.
//	                {"io.kubernetes.cri.pod-annotations": {"k": "v"}}
//	CNI_IFNAME      interface name (default eth0)
//	CNI_CONTAINERID container id (default: derived from the netns path)
//	CNI_CACHE_DIR   libcni result cache dir (default libcni's /var/lib/cni);
//	                tests point it at their temp dir so cleanup is one rm.
//
// On success "add" prints the result JSON on stdout. On failure the exit code
// is 1 and stderr holds a human line followed by the CNI error object as one
// JSON line ({"code":..,"msg":..,"details":..}) when the plugin returned one.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

const usage = "usage: cnitool add|check|del <netname> <netns-path>"

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		report(err)
		os.Exit(1)
	}
}

func run(verb, netName, netnsPath string) error {
	confDir := envOr("NETCONFPATH", "/etc/cni/net.d")
	list, err := libcni.LoadConfList(confDir, netName)
	if err != nil {
		return fmt.Errorf("loading network %q from %s: %w", netName, confDir, err)
	}

	rt, err := runtimeConf(netnsPath)
	if err != nil {
		return err
	}

	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		return result.Print()
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	default:
		return fmt.Errorf("unknown command %q; %s", verb, usage)
	}
}

func runtimeConf(netnsPath string) (*libcni.RuntimeConf, error) {
	rt := &libcni.RuntimeConf{
		ContainerID: os.Getenv("CNI_CONTAINERID"),
		NetNS:       netnsPath,
		IfName:      envOr("CNI_IFNAME", "eth0"),
	}
	if rt.ContainerID == "" {
		sum := sha512.Sum512([]byte(netnsPath))
		rt.ContainerID = "cnitool-" + hex.EncodeToString(sum[:])[:20]
	}
	if args := os.Getenv("CNI_ARGS"); args != "" {
		for _, pair := range strings.Split(args, ";") {
			if pair == "" {
				continue
			}
			kv := strings.SplitN(pair, "=", 2)
			if len(kv) != 2 {
				return nil, fmt.Errorf("CNI_ARGS: %q is not KEY=VALUE", pair)
			}
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	if capArgs := os.Getenv("CAP_ARGS"); capArgs != "" {
		if err := json.Unmarshal([]byte(capArgs), &rt.CapabilityArgs); err != nil {
			return nil, fmt.Errorf("CAP_ARGS is not a JSON object: %w", err)
		}
	}
	return rt, nil
}

// report prints the error for a human, then the CNI error object (if the
// plugin returned one) as a single JSON line a test can pick up with jq.
func report(err error) {
	fmt.Fprintf(os.Stderr, "cnitool: %v\n", err)
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		line, _ := json.Marshal(cniErr)
		fmt.Fprintln(os.Stderr, string(line))
	}
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
