"""minipod: Kubernetes v1 Pods on one Linux machine, straight on the kernel."""

__version__ = "0.1.0"
