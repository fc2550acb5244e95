"""multinet: Kubernetes multi-network (KEP-3698) reference implementation."""
