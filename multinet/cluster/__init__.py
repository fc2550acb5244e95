"""The built-in local cluster: a real Kubernetes control plane as local
processes, for machines without a container engine."""
