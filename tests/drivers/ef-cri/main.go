// ef-cri is a small client of the Kubernetes CRI (runtime.v1) for the runtime
// suite: it asks containerd for pod sandboxes and containers the way kubelet
// does, so the CNI chain runs exactly as on a node. Nothing in Debian ships
// crictl or the CRI protobufs; cri.proto here holds the subset this client
// uses, generated at build time with protoc (scripts/bootstrap.sh).
//
// Usage: ef-cri --socket PATH [--timeout DURATION] COMMAND [flags]
//
//	wait-ready                    until RuntimeReady and NetworkReady are true
//	cni-config                    the CNI config the runtime loaded (Status verbose "cniconfig")
//	image-status REF              exit 0 if the runtime knows the image (prints its id)
//	run-pod --name N --namespace NS [--uid U] [--annotation k=v]... [--label k=v]...
//	        [--log-dir DIR] [--cgroup-parent PATH] [--config-out FILE]
//	                              RunPodSandbox; prints the sandbox id
//	pod-status ID                 PodSandboxStatus (verbose) as JSON: id, state, ip, netns, annotations
//	list-pods [--label k=v]...    the ids of the sandboxes, one a line
//	stop-pod ID | remove-pod ID
//	run-container --pod ID --pod-config FILE --name C --image REF [--user N] [--group N]
//	        [--drop CAP]... [--add CAP]... [--no-new-privs] [--read-only] [--wait] [--] CMD...
//	                              CreateContainer + StartContainer; prints the container id,
//	                              or with --wait waits for it to exit, prints its log and
//	                              exits with the container's exit code
//	container-status ID           ContainerStatus as JSON: id, state, exit code, reason
//	stop-container ID | remove-container ID
//
// A failed call prints the runtime's error (the gRPC status message, which is
// where a CNI plugin's error ends up) on stderr and exits 200, so it cannot be
// mistaken for a container's exit code (a probe exits with an errno < 200).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

const clientFailure = 200

type keyValues map[string]string

func (kv keyValues) String() string { return fmt.Sprint(map[string]string(kv)) }

func (kv keyValues) Set(s string) error {
	parts := strings.SplitN(s, "=", 2)
	if len(parts) != 2 || parts[0] == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	kv[parts[0]] = parts[1]
	return nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type client struct {
	ctx     context.Context
	timeout time.Duration
	runtime RuntimeServiceClient
	images  ImageServiceClient
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "ef-cri: "+format+"\n", args...)
	os.Exit(clientFailure)
}

// check ends the program on a failed call, printing the runtime's message.
func check(what string, err error) {
	if err == nil {
		return
	}
	if s, ok := status.FromError(err); ok {
		fail("%s: %s: %s", what, s.Code(), s.Message())
	}
	fail("%s: %v", what, err)
}

func main() {
	global := flag.NewFlagSet("ef-cri", flag.ExitOnError)
	socket := global.String("socket", "/run/containerd/containerd.sock", "the runtime's CRI socket")
	timeout := global.Duration("timeout", 60*time.Second, "bound for every call and every wait")
	_ = global.Parse(os.Args[1:])
	if global.NArg() < 1 {
		fail("no command given (see the comment at the top of main.go)")
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, *socket, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}))
	check("connecting to "+*socket, err)
	defer conn.Close()
	c := &client{ctx: ctx, timeout: *timeout, runtime: NewRuntimeServiceClient(conn), images: NewImageServiceClient(conn)}

	cmd, args := global.Arg(0), global.Args()[1:]
	switch cmd {
	case "wait-ready":
		c.waitReady()
	case "cni-config":
		c.cniConfig()
	case "image-status":
		c.imageStatus(args)
	case "run-pod":
		c.runPod(args)
	case "pod-status":
		c.podStatus(oneID(cmd, args))
	case "list-pods":
		c.listPods(args)
	case "stop-pod":
		_, err := c.runtime.StopPodSandbox(ctx, &StopPodSandboxRequest{PodSandboxId: oneID(cmd, args)})
		check("StopPodSandbox", err)
	case "remove-pod":
		_, err := c.runtime.RemovePodSandbox(ctx, &RemovePodSandboxRequest{PodSandboxId: oneID(cmd, args)})
		check("RemovePodSandbox", err)
	case "run-container":
		os.Exit(c.runContainer(args))
	case "container-status":
		c.containerStatus(oneID(cmd, args))
	case "stop-container":
		_, err := c.runtime.StopContainer(ctx, &StopContainerRequest{ContainerId: oneID(cmd, args), Timeout: 5})
		check("StopContainer", err)
	case "remove-container":
		_, err := c.runtime.RemoveContainer(ctx, &RemoveContainerRequest{ContainerId: oneID(cmd, args)})
		check("RemoveContainer", err)
	default:
		fail("unknown command %q", cmd)
	}
}

func oneID(cmd string, args []string) string {
	if len(args) != 1 || args[0] == "" {
		fail("%s takes exactly one id", cmd)
	}
	return args[0]
}

func printJSON(v interface{}) {
	out, err := json.Marshal(v)
	if err != nil {
		fail("encoding output: %v", err)
	}
	fmt.Println(string(out))
}

// poll calls done every 50 ms until it reports true or the timeout passes;
// *last (when given) says what was seen the last time.
func (c *client) poll(what string, last *string, done func() bool) {
	for !done() {
		select {
		case <-c.ctx.Done():
			if last != nil && *last != "" {
				fail("timed out after %s waiting for %s (last seen: %s)", c.timeout, what, *last)
			}
			fail("timed out after %s waiting for %s", c.timeout, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *client) waitReady() {
	var last string
	c.poll("RuntimeReady and NetworkReady", &last, func() bool {
		resp, err := c.runtime.Status(c.ctx, &StatusRequest{})
		if err != nil {
			last = err.Error()
			return false
		}
		ready := map[string]bool{}
		for _, cond := range resp.GetStatus().GetConditions() {
			ready[cond.GetType()] = cond.GetStatus()
			if !cond.GetStatus() {
				last = cond.GetType() + ": " + cond.GetReason() + " " + cond.GetMessage()
			}
		}
		return ready["RuntimeReady"] && ready["NetworkReady"]
	})
}

func (c *client) cniConfig() {
	resp, err := c.runtime.Status(c.ctx, &StatusRequest{Verbose: true})
	check("Status", err)
	cfg, ok := resp.GetInfo()["cniconfig"]
	if !ok {
		fail("the runtime's Status has no cniconfig in its verbose info")
	}
	fmt.Println(cfg)
}

func (c *client) imageStatus(args []string) {
	ref := oneID("image-status", args)
	resp, err := c.images.ImageStatus(c.ctx, &ImageStatusRequest{Image: &ImageSpec{Image: ref}})
	check("ImageStatus", err)
	if resp.GetImage() == nil {
		fmt.Fprintf(os.Stderr, "ef-cri: the runtime does not know image %s\n", ref)
		os.Exit(1)
	}
	fmt.Println(resp.GetImage().GetId())
}

func (c *client) runPod(args []string) {
	fs := flag.NewFlagSet("run-pod", flag.ExitOnError)
	name := fs.String("name", "", "pod name")
	namespace := fs.String("namespace", "default", "pod namespace")
	uid := fs.String("uid", "", "pod UID (default: namespace-name)")
	logDir := fs.String("log-dir", "", "the pod's log directory (containers log into it)")
	cgroupParent := fs.String("cgroup-parent", "", "the pod's parent cgroup (kubelet always sets one)")
	configOut := fs.String("config-out", "", "write the sandbox config here (run-container needs it)")
	annotations, labels := keyValues{}, keyValues{}
	fs.Var(annotations, "annotation", "pod annotation k=v (repeatable)")
	fs.Var(labels, "label", "pod label k=v (repeatable)")
	_ = fs.Parse(args)
	if *name == "" || fs.NArg() != 0 {
		fail("run-pod needs --name and takes no positional arguments")
	}
	if *uid == "" {
		*uid = *namespace + "-" + *name
	}
	cfg := &PodSandboxConfig{
		Metadata:     &PodSandboxMetadata{Name: *name, Namespace: *namespace, Uid: *uid},
		Hostname:     *name,
		LogDirectory: *logDir,
		Labels:       labels,
		Annotations:  annotations,
		Linux: &LinuxPodSandboxConfig{CgroupParent: *cgroupParent, SecurityContext: &LinuxSandboxSecurityContext{
			NamespaceOptions: &NamespaceOption{Network: NamespaceMode_POD, Pid: NamespaceMode_CONTAINER, Ipc: NamespaceMode_POD},
		}},
	}
	if *configOut != "" {
		out, err := json.Marshal(cfg)
		if err != nil {
			fail("encoding the sandbox config: %v", err)
		}
		if err := ioutil.WriteFile(*configOut, out, 0o600); err != nil {
			fail("writing %s: %v", *configOut, err)
		}
	}
	resp, err := c.runtime.RunPodSandbox(c.ctx, &RunPodSandboxRequest{Config: cfg})
	check("RunPodSandbox", err)
	fmt.Println(resp.GetPodSandboxId())
}

// sandboxInfo is the part of containerd's verbose sandbox record we read.
type sandboxInfo struct {
	Pid         int  `json:"pid"`
	NetNSClosed bool `json:"netNamespaceClosed"`
	RuntimeSpec struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

func (c *client) podStatus(id string) {
	resp, err := c.runtime.PodSandboxStatus(c.ctx, &PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	check("PodSandboxStatus", err)
	st := resp.GetStatus()
	var info sandboxInfo
	if raw, ok := resp.GetInfo()["info"]; ok {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			fail("decoding the sandbox's verbose info: %v", err)
		}
	}
	netns := ""
	for _, ns := range info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			netns = ns.Path
		}
	}
	printJSON(map[string]interface{}{
		"id":          st.GetId(),
		"name":        st.GetMetadata().GetName(),
		"namespace":   st.GetMetadata().GetNamespace(),
		"state":       st.GetState().String(),
		"ip":          st.GetNetwork().GetIp(),
		"netns":       netns,
		"netnsClosed": info.NetNSClosed,
		"pid":         info.Pid,
		"annotations": st.GetAnnotations(),
	})
}

func (c *client) listPods(args []string) {
	fs := flag.NewFlagSet("list-pods", flag.ExitOnError)
	labels := keyValues{}
	fs.Var(labels, "label", "only sandboxes with this label k=v (repeatable)")
	_ = fs.Parse(args)
	resp, err := c.runtime.ListPodSandbox(c.ctx, &ListPodSandboxRequest{Filter: &PodSandboxFilter{LabelSelector: labels}})
	check("ListPodSandbox", err)
	for _, p := range resp.GetItems() {
		fmt.Println(p.GetId())
	}
}

func (c *client) runContainer(args []string) int {
	fs := flag.NewFlagSet("run-container", flag.ExitOnError)
	pod := fs.String("pod", "", "sandbox id")
	podConfig := fs.String("pod-config", "", "the sandbox config run-pod --config-out wrote")
	name := fs.String("name", "", "container name")
	image := fs.String("image", "", "image reference")
	user := fs.Int64("user", -1, "runAsUser (default: the image's)")
	group := fs.Int64("group", -1, "runAsGroup")
	noNewPrivs := fs.Bool("no-new-privs", false, "allowPrivilegeEscalation: false")
	readOnly := fs.Bool("read-only", false, "readOnlyRootFilesystem: true")
	wait := fs.Bool("wait", false, "wait for the container to exit and exit with its code")
	var drop, add stringList
	fs.Var(&drop, "drop", "capability to drop (repeatable; ALL drops every one)")
	fs.Var(&add, "add", "capability to add (repeatable)")
	_ = fs.Parse(args)
	if *pod == "" || *podConfig == "" || *name == "" || *image == "" || fs.NArg() == 0 {
		fail("run-container needs --pod, --pod-config, --name, --image and a command")
	}
	raw, err := ioutil.ReadFile(*podConfig)
	if err != nil {
		fail("reading %s: %v", *podConfig, err)
	}
	var sandbox PodSandboxConfig
	if err := json.Unmarshal(raw, &sandbox); err != nil {
		fail("decoding %s: %v", *podConfig, err)
	}

	sc := &LinuxContainerSecurityContext{
		NoNewPrivs:       *noNewPrivs,
		ReadonlyRootfs:   *readOnly,
		NamespaceOptions: &NamespaceOption{Network: NamespaceMode_POD, Pid: NamespaceMode_CONTAINER, Ipc: NamespaceMode_POD},
	}
	if len(drop) > 0 || len(add) > 0 {
		sc.Capabilities = &Capability{DropCapabilities: drop, AddCapabilities: add}
	}
	if *user >= 0 {
		sc.RunAsUser = &Int64Value{Value: *user}
	}
	if *group >= 0 {
		sc.RunAsGroup = &Int64Value{Value: *group}
	}
	cfg := &ContainerConfig{
		Metadata: &ContainerMetadata{Name: *name},
		Image:    &ImageSpec{Image: *image},
		Command:  fs.Args(),
		Linux:    &LinuxContainerConfig{SecurityContext: sc},
	}
	if sandbox.GetLogDirectory() != "" {
		cfg.LogPath = *name + ".log"
	}
	created, err := c.runtime.CreateContainer(c.ctx, &CreateContainerRequest{PodSandboxId: *pod, Config: cfg, SandboxConfig: &sandbox})
	check("CreateContainer", err)
	id := created.GetContainerId()
	_, err = c.runtime.StartContainer(c.ctx, &StartContainerRequest{ContainerId: id})
	check("StartContainer "+id, err)
	if !*wait {
		fmt.Println(id)
		return 0
	}

	var st *ContainerStatus
	c.poll("container "+id+" to exit", nil, func() bool {
		resp, err := c.runtime.ContainerStatus(c.ctx, &ContainerStatusRequest{ContainerId: id})
		check("ContainerStatus", err)
		st = resp.GetStatus()
		return st.GetState() == ContainerState_CONTAINER_EXITED
	})
	if sandbox.GetLogDirectory() != "" {
		// CRI log lines: "TIME STREAM TAG MESSAGE"; print the messages.
		if log, err := ioutil.ReadFile(filepath.Join(sandbox.GetLogDirectory(), cfg.LogPath)); err == nil {
			for _, line := range strings.Split(strings.TrimRight(string(log), "\n"), "\n") {
				if f := strings.SplitN(line, " ", 4); len(f) == 4 {
					fmt.Println(f[3])
				}
			}
		}
	}
	_, err = c.runtime.RemoveContainer(c.ctx, &RemoveContainerRequest{ContainerId: id})
	check("RemoveContainer "+id, err)
	if st.GetExitCode() >= clientFailure {
		fail("container %s exited %d (%s %s)", id, st.GetExitCode(), st.GetReason(), st.GetMessage())
	}
	return int(st.GetExitCode())
}

func (c *client) containerStatus(id string) {
	resp, err := c.runtime.ContainerStatus(c.ctx, &ContainerStatusRequest{ContainerId: id})
	check("ContainerStatus", err)
	st := resp.GetStatus()
	printJSON(map[string]interface{}{
		"id":       st.GetId(),
		"name":     st.GetMetadata().GetName(),
		"state":    st.GetState().String(),
		"exitCode": st.GetExitCode(),
		"reason":   st.GetReason(),
		"message":  st.GetMessage(),
	})
}
