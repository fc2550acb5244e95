//go:build tools

// Package tools pins the Kubernetes packages this module builds (the control
// plane, kubectl, kubelet and the e2e probe agnhost), so that 'go mod tidy'
// keeps their dependencies in go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/kubectl/pkg/cmd"
)
