"""The multinet CNI plugin shim and the node agent."""
