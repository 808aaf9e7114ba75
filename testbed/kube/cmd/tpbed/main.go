// Command tpbed is the testbed's multi-call binary: one link holds every Kubernetes
// component the testbed runs (and etcd), picked by the name it is called as
// (a symlink such as bin/kubelet) or by its first argument (tpbed kubelet ...).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	etcdmain "go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubeadm "k8s.io/kubernetes/cmd/kubeadm/app"
	kubeadmerrors "k8s.io/kubernetes/cmd/kubeadm/app/util/errors"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"

	// The blank imports of the upstream cmd/<component>/<component>.go files.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	_ "time/tzdata"
)

func main() {
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if name == "tpbed" {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: tpbed <kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|kubectl|kubeadm|etcd> [args...]")
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	// Every component reads its arguments from os.Args (cobra, kubeadm, etcd).
	os.Args = append([]string{name}, args...)

	var command *cobra.Command
	switch name {
	case "kube-apiserver":
		command = apiserver.NewAPIServerCommand()
	case "kube-controller-manager":
		command = controllermanager.NewControllerManagerCommand()
	case "kube-scheduler":
		command = scheduler.NewSchedulerCommand()
	case "kubelet":
		command = kubelet.NewKubeletCommand(context.Background())
	case "kube-proxy":
		command = proxy.NewProxyCommand()
	case "kubectl":
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
		return
	case "kubeadm":
		kubeadmerrors.HandleError(kubeadm.Run())
		return
	case "etcd":
		etcdmain.Main(os.Args)
		return
	default:
		fmt.Fprintf(os.Stderr, "tpbed: unknown component %q\n", name)
		os.Exit(2)
	}
	os.Exit(cli.Run(command))
}
