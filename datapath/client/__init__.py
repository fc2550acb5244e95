"""What the node agent uses: a P4Runtime client and the Datapath over it."""
