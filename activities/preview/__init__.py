"""Preview environments of a PR head: a local process sandbox now, vCluster on Kubernetes later."""
