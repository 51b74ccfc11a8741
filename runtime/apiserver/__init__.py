"""The Kubernetes API server (see server.py)."""
