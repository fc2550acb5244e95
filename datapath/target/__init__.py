"""The IPU target: a P4Runtime server realizing the pipeline in a Linux kernel."""
