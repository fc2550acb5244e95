"""The offload datapath: P4Runtime pipeline, client and the IPU target."""
