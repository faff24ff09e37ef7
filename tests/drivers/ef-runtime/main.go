// ef-runtime sets up pod networking through go-cni the way containerd's CRI
// plugin does: the conf dir's first network (by file name) plus the loopback
// network, K8S_POD_* labels with IgnoreUnknown=1, and the pod annotations as
// the io.kubernetes.cri.pod-annotations capability.
//
// Usage:
//
//	ef-runtime setup|check|remove --netns PATH [--conf-dir DIR] [--bin-dir DIR[:DIR]]
//	           [--namespace NS] [--name NAME] [--id ID] [--uid UID]
//	           [--annotation k=v]... [--serial] [--no-annotations-capability]
//
// --no-annotations-capability acts as a runtime that does not implement the
// capability (CRI-O before 1.29): go-cni is not given it, so libcni puts no
// such key in any plugin's runtimeConfig, whatever the pod's annotations.
//
// setup prints the result as JSON. Any failure exits 1 with the error on
// stderr, followed by the CNI error object as one JSON line when a plugin
// returned one.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gocni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/pkg/types"
)

// The capability name containerd uses to hand pod annotations to plugins.
const podAnnotationsCapability = "io.kubernetes.cri.pod-annotations"

type annotations map[string]string

func (a annotations) String() string { return fmt.Sprint(map[string]string(a)) }

func (a annotations) Set(kv string) error {
	parts := strings.SplitN(kv, "=", 2)
	if len(parts) != 2 || parts[0] == "" {
		return fmt.Errorf("%q is not key=value", kv)
	}
	a[parts[0]] = parts[1]
	return nil
}

type pod struct {
	confDir, binDir, netns string
	namespace, name, id    string
	uid                    string
	serial                 bool
	noAnnotationsCap       bool
	annotations            annotations
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ef-runtime setup|check|remove --netns PATH [flags]")
		os.Exit(2)
	}
	verb := os.Args[1]
	p := pod{annotations: annotations{}}
	fs := flag.NewFlagSet("ef-runtime "+verb, flag.ExitOnError)
	fs.StringVar(&p.confDir, "conf-dir", "/etc/cni/net.d", "CNI conf dir")
	fs.StringVar(&p.binDir, "bin-dir", "/opt/cni/bin", "CNI plugin dirs, ':'-separated")
	fs.StringVar(&p.netns, "netns", "", "pod network namespace path")
	fs.StringVar(&p.namespace, "namespace", "default", "pod namespace (K8S_POD_NAMESPACE)")
	fs.StringVar(&p.name, "name", "pod", "pod name (K8S_POD_NAME)")
	fs.StringVar(&p.id, "id", "", "sandbox id (K8S_POD_INFRA_CONTAINER_ID; default random)")
	fs.StringVar(&p.uid, "uid", "", "pod UID (K8S_POD_UID; default derived from the id)")
	fs.BoolVar(&p.serial, "serial", false, "attach networks one after another (containerd's setup_serially)")
	fs.Var(p.annotations, "annotation", "pod annotation k=v (repeatable)")
	fs.BoolVar(&p.noAnnotationsCap, "no-annotations-capability", false,
		"do not pass the "+podAnnotationsCapability+" capability (a runtime without it)")
	_ = fs.Parse(os.Args[2:])
	if fs.NArg() != 0 || p.netns == "" {
		fmt.Fprintln(os.Stderr, "ef-runtime: --netns is required and no positional arguments are accepted")
		os.Exit(2)
	}
	if p.id == "" {
		p.id = randomID()
	}
	if p.uid == "" {
		p.uid = "uid-" + p.id[:16]
	}
	if err := run(verb, &p); err != nil {
		report(err)
		os.Exit(1)
	}
}

func run(verb string, p *pod) error {
	// containerd loads lo plus the default network and needs both. CHECK is the
	// exception: go-cni's built-in lo network is declared 0.3.1, which has no
	// CHECK, so check looks at the default network only (containerd never
	// calls CHECK itself).
	loads := []gocni.Opt{gocni.WithLoNetwork, gocni.WithDefaultConf}
	if verb == "check" {
		loads = loads[1:]
	}
	cni, err := gocni.New(
		gocni.WithMinNetworkCount(len(loads)),
		gocni.WithPluginConfDir(p.confDir),
		gocni.WithPluginMaxConfNum(1),
		gocni.WithPluginDir(filepath.SplitList(p.binDir)),
	)
	if err != nil {
		return err
	}
	if err := cni.Load(loads...); err != nil {
		return err
	}

	opts := []gocni.NamespaceOpts{
		gocni.WithLabels(map[string]string{
			"K8S_POD_NAMESPACE":          p.namespace,
			"K8S_POD_NAME":               p.name,
			"K8S_POD_INFRA_CONTAINER_ID": p.id,
			"K8S_POD_UID":                p.uid,
			// Without it the reference plugins reject the K8S_POD_* args.
			"IgnoreUnknown": "1",
		}),
	}
	if !p.noAnnotationsCap {
		opts = append(opts, gocni.WithCapability(podAnnotationsCapability, map[string]string(p.annotations)))
	}

	ctx := context.Background()
	switch verb {
	case "setup":
		setup := cni.Setup
		if p.serial {
			setup = cni.SetupSerially
		}
		result, err := setup(ctx, p.id, p.netns, opts...)
		if err != nil {
			return err
		}
		out, err := json.MarshalIndent(map[string]interface{}{
			"id":         p.id,
			"interfaces": result.Interfaces,
			"dns":        result.DNS,
			"routes":     result.Routes,
			"results":    result.Raw(),
		}, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(out))
		return nil
	case "check":
		return cni.Check(ctx, p.id, p.netns, opts...)
	case "remove":
		return cni.Remove(ctx, p.id, p.netns, opts...)
	default:
		return fmt.Errorf("unknown command %q (setup, check, remove)", verb)
	}
}

func report(err error) {
	fmt.Fprintf(os.Stderr, "ef-runtime: %v\n", err)
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		line, _ := json.Marshal(cniErr)
		fmt.Fprintln(os.Stderr, string(line))
	}
}

func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
